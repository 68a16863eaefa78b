import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createKeyRing,
  decryptField,
  encryptField,
  parsePrivateKey,
  tokenKind,
  verifyTokenHash,
} from "@keyway/crypto";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError } from "./config-error";
import {
  DEVELOPMENT_GATEWAY_ID,
  upgradeDevelopmentConfig,
  writeDevelopmentConfig,
} from "./development-config";
import { loadConfig } from "./load-config";

/** Every temporary directory the tests make (they hold generated keys), removed at the end. */
const made: string[] = [];
afterAll(() => Promise.all(made.map((dir) => rm(dir, { recursive: true, force: true }))));

async function freshDir(): Promise<string> {
  const parent = await mkdtemp(join(tmpdir(), "keyway-dev-"));
  made.push(parent);
  return join(parent, ".keyway");
}

describe("writeDevelopmentConfig", () => {
  it("writes a config with fresh keys that loadConfig accepts", async () => {
    const dir = await freshDir();
    const files = await writeDevelopmentConfig({ dir });
    expect(files).toMatchObject({
      configPath: join(dir, "keyway.toml"),
      operatorTokenPath: join(dir, "operator-token"),
      gatewayCaCertPath: join(dir, "gateway-ca.pem"),
      gatewayCaKeyPath: join(dir, "gateway-ca-key.pem"),
    });
    expect((await stat(files.configPath)).mode & 0o777).toBe(0o600);
    expect((await stat(files.operatorTokenPath)).mode & 0o777).toBe(0o600);
    expect(await readFile(files.operatorTokenPath, "utf8")).toBe(`${files.operatorToken}\n`);
    expect(tokenKind(files.operatorToken)).toBe("operator");

    const text = await readFile(files.configPath, "utf8");
    expect(text.startsWith("# Keyway development configuration")).toBe(true);
    expect(text).not.toContain(files.operatorToken);

    const config = await loadConfig({ path: files.configPath, env: {} });
    expect(config.database.url).toBeUndefined();
    expect(config.database.embedded.data_dir).toBe(join(dir, "postgres"));
    expect(config.gateway.ca_cert_path).toBe(files.gatewayCaCertPath);
    expect(config.gateway.ca_key_path).toBe(files.gatewayCaKeyPath);
    expect(config.gateway.control_plane_url).toBe(config.api.public_url);
    expect(config.operator.token_hashes).toHaveLength(1);
    expect(verifyTokenHash(files.operatorToken, config.operator.token_hashes[0] ?? "")).toBe(true);

    const ring = createKeyRing(config.keys.master);
    const ref = { table: "t", column: "c", id: "1" };
    expect(decryptField(ring, ref, encryptField(ring, ref, "ok"))).toBe("ok");

    const signing = config.keys.session_signing;
    const sessionKey = await parsePrivateKey(signing?.keys[0]?.private_key ?? "");
    expect(signing?.current_kid).toBe(sessionKey.kid);
    expect(signing?.keys[0]?.kid).toBe(sessionKey.kid);

    // The gateway's identity matches the control plane's trusted entry for it.
    const identity = config.gateway.identity;
    expect(identity?.gateway_id).toBe(DEVELOPMENT_GATEWAY_ID);
    const gatewayKey = await parsePrivateKey(identity?.private_key ?? "");
    expect(config.internal.gateways).toEqual([
      { id: DEVELOPMENT_GATEWAY_ID, public_jwk: gatewayKey.publicJwk },
    ]);
    expect(gatewayKey.kid).not.toBe(sessionKey.kid);
  });

  it("generates different secrets every time", async () => {
    const a = await writeDevelopmentConfig({ dir: await freshDir() });
    const b = await writeDevelopmentConfig({ dir: await freshDir() });
    expect(a.operatorToken).not.toBe(b.operatorToken);
    const [configA, configB] = await Promise.all([
      loadConfig({ path: a.configPath, env: {} }),
      loadConfig({ path: b.configPath, env: {} }),
    ]);
    expect(configA.keys.master?.keys[0]?.key).not.toBe(configB.keys.master?.keys[0]?.key);
  });

  it("never overwrites an existing config or token file", async () => {
    const dir = await freshDir();
    const first = await writeDevelopmentConfig({ dir });
    const before = await readFile(first.configPath, "utf8");
    const error = await writeDevelopmentConfig({ dir }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({ code: "CONFIG_EXISTS" });
    expect(await readFile(first.configPath, "utf8")).toBe(before);

    // A token left over without its config is not overwritten either, and no config is written.
    const leftover = await freshDir();
    const written = await writeDevelopmentConfig({ dir: leftover });
    await rm(written.configPath);
    await expect(writeDevelopmentConfig({ dir: leftover })).rejects.toMatchObject({
      code: "CONFIG_EXISTS",
    });
    expect(await readFile(written.operatorTokenPath, "utf8")).toBe(`${written.operatorToken}\n`);
    await expect(stat(written.configPath)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("writes no derived URL, so moving the API's port moves every URL that follows it", async () => {
    const files = await writeDevelopmentConfig({ dir: await freshDir() });
    const text = await readFile(files.configPath, "utf8");
    expect(text).not.toMatch(/public_url|public_proxy_url|control_plane_url/);

    // The README's example: KEYWAY_API__PORT=9000 pnpm start.
    const moved = await loadConfig({ path: files.configPath, env: { KEYWAY_API__PORT: "9000" } });
    expect(moved.api.public_url).toBe("http://127.0.0.1:9000");
    expect(moved.gateway.control_plane_url).toBe("http://127.0.0.1:9000");
    const proxy = await loadConfig({
      path: files.configPath,
      env: { KEYWAY_GATEWAY__PORT: "9001" },
    });
    expect(proxy.gateway.public_proxy_url).toBe("http://127.0.0.1:9001");
  });
});

describe("upgradeDevelopmentConfig", () => {
  /** A development config as an older `pnpm start` wrote it: with api.public_url pinned. */
  async function olderConfig(publicUrl: string): Promise<string> {
    const files = await writeDevelopmentConfig({ dir: await freshDir() });
    const text = await readFile(files.configPath, "utf8");
    const pinned = text.replace("port = 8080\n", `port = 8080\npublic_url = "${publicUrl}"\n`);
    expect(pinned).not.toBe(text);
    await writeFile(files.configPath, pinned);
    return files.configPath;
  }

  it("removes the api.public_url an older pnpm start pinned, and nothing else", async () => {
    const path = await olderConfig("http://127.0.0.1:8080");
    const before = await readFile(path, "utf8");
    expect((await loadConfig({ path, env: { KEYWAY_API__PORT: "9000" } })).api.public_url).toBe(
      "http://127.0.0.1:8080",
    );

    expect(await upgradeDevelopmentConfig(path)).toEqual(["api.public_url"]);
    const after = await readFile(path, "utf8");
    expect(after).toBe(before.replace('public_url = "http://127.0.0.1:8080"\n', ""));
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const moved = await loadConfig({ path, env: { KEYWAY_API__PORT: "9000" } });
    expect(moved.api.public_url).toBe("http://127.0.0.1:9000");
    expect(moved.gateway.control_plane_url).toBe("http://127.0.0.1:9000");

    expect(await upgradeDevelopmentConfig(path)).toEqual([]);
    expect(await readFile(path, "utf8")).toBe(after);
  });

  it("leaves a public_url chosen on purpose, and files it did not write", async () => {
    const chosen = await olderConfig("https://keyway.example.com");
    const before = await readFile(chosen, "utf8");
    expect(await upgradeDevelopmentConfig(chosen)).toEqual([]);
    expect(await readFile(chosen, "utf8")).toBe(before);

    const own = join(await freshDir(), "..", "keyway.toml");
    const text = '[api]\nport = 8080\npublic_url = "http://127.0.0.1:8080"\n';
    await writeFile(own, text);
    expect(await upgradeDevelopmentConfig(own)).toEqual([]);
    expect(await readFile(own, "utf8")).toBe(text);
  });
});
