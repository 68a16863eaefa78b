import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringifyConfig } from "@keyway/config";
import {
  ciphertextKeyVersion,
  createKeyRing,
  decryptField,
  encryptField,
  generateMasterKey,
} from "@keyway/crypto";
import {
  createDatabase,
  type DatabaseHandle,
  integrationTargets,
  newId,
  runMigrations,
} from "@keyway/db";
import { createTestDatabase, getFreePort, type TestDatabase } from "@keyway/test-harness";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliDeps, runCli } from "./cli";

const key1 = generateMasterKey();
const key2 = generateMasterKey();
const TARGET_SECRETS = { table: "integration_targets", column: "secrets_ciphertext" } as const;

let testDatabase: TestDatabase;
let database: DatabaseHandle;
let dir: string;
let targetId: string;

function output() {
  const out: string[] = [];
  const err: string[] = [];
  const deps: CliDeps = {
    stdout: (text) => out.push(text),
    stderr: (text) => err.push(text),
    clock: { now: () => new Date() },
    // Nothing from the developer's own environment leaks into the test.
    env: {},
  };
  return { deps, stdout: () => out.join(""), stderr: () => err.join("") };
}

async function writeConfig(name: string, config: Parameters<typeof stringifyConfig>[0]) {
  const path = join(dir, name);
  await writeFile(path, stringifyConfig(config));
  return path;
}

const ring12 = {
  current: 2,
  keys: [
    { version: 1, key: key1 },
    { version: 2, key: key2 },
  ],
};

beforeAll(async () => {
  testDatabase = await createTestDatabase("cli");
  await runMigrations(testDatabase.url);
  database = createDatabase(testDatabase.url, { max: 2 });
  dir = await mkdtemp(join(tmpdir(), "keyway-cli-"));
  targetId = newId("target");
  const ring1 = createKeyRing({ current: 1, keys: [{ version: 1, key: key1 }] });
  await database.db.insert(integrationTargets).values({
    id: targetId,
    targetKey: "github-cloud",
    familyId: "github",
    variantId: "github-cloud",
    kind: "git",
    enabled: true,
    secretsCiphertext: encryptField(
      ring1,
      { ...TARGET_SECRETS, id: targetId },
      '{"clientSecret":"s3cret"}',
    ),
    source: "registry",
  });
});
afterAll(async () => {
  await database.close();
  await testDatabase.drop();
  await rm(dir, { recursive: true, force: true });
});

describe("keyway keys rotate", () => {
  it("re-encrypts under the current key and prints a table", async () => {
    const config = await writeConfig("rotate.toml", {
      database: { url: testDatabase.url },
      keys: { master: ring12 },
    });
    const run = output();
    expect(await runCli(["keys", "rotate", "--config", config], run.deps)).toBe(0);
    expect(run.stdout()).toMatch(/integration_targets\.secrets_ciphertext\s+1\s+1\s+0/);
    expect(run.stdout()).toContain("older keys can be removed");
    const [row] = await database.db
      .select()
      .from(integrationTargets)
      .where(eq(integrationTargets.id, targetId));
    expect(ciphertextKeyVersion(row!.secretsCiphertext!)).toBe(2);
    const ring2 = createKeyRing({ current: 2, keys: [{ version: 2, key: key2 }] });
    expect(decryptField(ring2, { ...TARGET_SECRETS, id: targetId }, row!.secretsCiphertext!)).toBe(
      '{"clientSecret":"s3cret"}',
    );
    expect(run.stdout() + run.stderr()).not.toContain(key1);

    const again = output();
    expect(await runCli(["keys", "rotate", "--json", `--config=${config}`], again.deps)).toBe(0);
    const result = JSON.parse(again.stdout());
    expect(result.complete).toBe(true);
    expect(result.columns[0]).toMatchObject({
      table: "integration_targets",
      scanned: 1,
      reencrypted: 0,
    });
  });

  it("takes the database URL from KEYWAY_DATABASE__URL", async () => {
    const config = await writeConfig("env-url.toml", { keys: { master: ring12 } });
    const run = output();
    const code = await runCli(["keys", "rotate", "--config", config], {
      ...run.deps,
      env: { KEYWAY_DATABASE__URL: testDatabase.url },
    });
    expect(code).toBe(0);
  });

  it("explains what to do without a database URL or master keys", async () => {
    const noUrl = output();
    // No database.url: the CLI looks for the running platform's embedded server on its port;
    // a free port stands in for "the platform is not running".
    const noUrlConfig = await writeConfig("no-url.toml", {
      keys: { master: ring12 },
      database: { embedded: { port: await getFreePort() } },
    });
    expect(await runCli(["keys", "rotate", "--config", noUrlConfig], noUrl.deps)).toBe(3);
    expect(noUrl.stderr()).toContain("cannot reach the embedded database");
    expect(noUrl.stderr()).toContain("pnpm start");

    const noKeys = output();
    const noKeysConfig = await writeConfig("no-keys.toml", { database: { url: testDatabase.url } });
    expect(await runCli(["keys", "rotate", "--config", noKeysConfig], noKeys.deps)).toBe(2);
    expect(noKeys.stderr()).toContain("keys.master");

    const missingFile = output();
    expect(
      await runCli(
        ["audit", "verify", "--from-database", "--config", join(dir, "nope.toml")],
        missingFile.deps,
      ),
    ).toBe(2);
    expect(missingFile.stderr()).toContain("file not found");
  });
});

describe("keyway audit verify", () => {
  it("reports an intact chain, then the entry someone altered", async () => {
    // The master key ring signs and checks the chain's checkpoints.
    const config = await writeConfig("verify.toml", {
      database: { url: testDatabase.url },
      keys: { master: ring12 },
    });
    const ok = output();
    expect(await runCli(["audit", "verify", "--from-database", "--config", config], ok.deps)).toBe(
      0,
    );
    // Each rotation above appended a `keys.rotated` entry.
    expect(ok.stdout()).toBe("audit chain ok: 3 entries checked\n");

    await database.sql`update audit_log set actor = 'someone-else' where seq = (select min(seq) from audit_log)`;
    const broken = output();
    expect(
      await runCli(["audit", "verify", "--from-database", "--config", config], broken.deps),
    ).toBe(1);
    expect(broken.stdout()).toContain("audit chain BROKEN after 0 valid entries");
    expect(broken.stdout()).toContain("entry was altered");
    const json = output();
    expect(
      await runCli(["audit", "verify", "--from-database", "--json", "--config", config], json.deps),
    ).toBe(1);
    expect(JSON.parse(json.stdout())).toMatchObject({
      ok: false,
      firstInvalid: { reason: "hash_mismatch" },
    });
  });

  it("reports removed newest entries, which a signed checkpoint names", async () => {
    const config = await writeConfig("verify-truncated.toml", {
      database: { url: testDatabase.url },
      keys: { master: ring12 },
    });
    await database.sql`delete from audit_log`;
    await database.sql`delete from audit_seals`;
    await database.sql`delete from audit_checkpoints`;
    for (const subject of ["a", "b", "c"]) {
      await database.sql`insert into audit_log
        (id, organization_id, actor, action, subject_type, subject_id, created_at)
        values (${`aud_cli_${subject}`}, null, 'cli-test', 'test.entry', 'test', ${subject}, now())`;
    }
    const ok = output();
    // Unsealed entries are sealed (and the head checkpointed) before they are checked.
    expect(await runCli(["audit", "verify", "--from-database", "--config", config], ok.deps)).toBe(
      0,
    );
    expect(ok.stdout()).toBe("audit chain ok: 3 entries checked\n");
    // The newest entry and its link (audit_seals) removed: the chain that is left still links.
    await database.sql`
      with removed as (delete from audit_seals where chain_seq = 3 returning seq)
      delete from audit_log where seq in (select seq from removed)`;
    const truncated = output();
    expect(
      await runCli(["audit", "verify", "--from-database", "--config", config], truncated.deps),
    ).toBe(1);
    expect(truncated.stdout()).toContain("audit chain BROKEN after 2 valid entries");
    expect(truncated.stdout()).toContain("newest entries removed");
  });
});

describe("arguments", () => {
  it("shows usage for help, and exits 2 for unknown commands and options", async () => {
    const help = output();
    expect(await runCli(["help"], help.deps)).toBe(0);
    expect(help.stdout()).toContain("keys rotate");
    const unknown = output();
    expect(await runCli(["keys", "burn"], unknown.deps)).toBe(2);
    expect(unknown.stderr()).toContain('unknown command "keys burn"');
    const badOption = output();
    expect(await runCli(["audit", "verify", "--force"], badOption.deps)).toBe(2);
    expect(badOption.stderr()).toContain("unknown option --force");
    const noValue = output();
    expect(await runCli(["audit", "verify", "--config"], noValue.deps)).toBe(2);
  });
});
