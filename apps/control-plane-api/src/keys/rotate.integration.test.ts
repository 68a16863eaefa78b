import {
  ciphertextKeyVersion,
  createKeyRing,
  DecryptError,
  decryptField,
  encryptField,
  generateMasterKey,
  type KeyRing,
} from "@keyway/crypto";
import {
  auditCheckpoints,
  auditLog,
  cachedCredentials,
  connectionCredentials,
  type Database,
  integrationTargets,
  newId,
  oauthSessions,
  webhookSubscriptions,
} from "@keyway/db";
import { createCatalogueRegistry } from "@keyway/integrations-definitions";
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuditSealer } from "../audit/sealer";
import { appendAudit, verifyAuditChain } from "../audit/service";
import { createCredentialCache } from "../credentials/credential-cache";
import {
  decryptSubscriptionSecret,
  decryptTargetSecrets,
  encryptSubscriptionSecret,
  readCurrentCredential,
  writeCredentialVersion,
} from "../credentials/secret-store";
import { seedConnection, seedOrganization, seedTarget } from "../internal/fixtures";
import { createMemoryLogger } from "../logger";
import { createTestApp, type TestApp } from "../testing/test-app";
import { rotateKeys } from "./rotate";

const key1 = generateMasterKey();
const key2 = generateMasterKey();
const key3 = generateMasterKey();
const ring1 = createKeyRing({ current: 1, keys: [{ version: 1, key: key1 }] });
const ring12 = createKeyRing({
  current: 2,
  keys: [
    { version: 1, key: key1 },
    { version: 2, key: key2 },
  ],
});
const ring2 = createKeyRing({ current: 2, keys: [{ version: 2, key: key2 }] });
const ring23 = createKeyRing({
  current: 3,
  keys: [
    { version: 2, key: key2 },
    { version: 3, key: key3 },
  ],
});

const PKCE = { table: "oauth_sessions", column: "pkce_verifier_ciphertext" } as const;
const WEBHOOK = { table: "webhook_subscriptions", column: "secret_ciphertext" } as const;

let t: TestApp;
let db: Database;
const registry = createCatalogueRegistry();
const rows = {
  targets: [] as { id: string; secrets: Record<string, string> }[],
  connections: [] as { id: string; apiKey: string }[],
  oauthSessionId: "",
  subscriptionId: "",
  cachedConnectionId: "",
};

/** A cached installation token, read back through the cache (a fresh value if it cannot). */
async function cachedToken(ring: KeyRing): Promise<string> {
  const cache = createCredentialCache({ database: t.deps.database, keyRing: ring, clock: t.clock });
  const obtained = await cache.obtain(
    { connectionId: rows.cachedConnectionId, organizationId: "", resolver: "r", scope: 1 },
    async () => ({
      value: "minted-again",
      expiresAt: new Date(t.clock.now().getTime() + 3_600_000),
    }),
  );
  return obtained.value;
}

/** Reads every encrypted row back through the code that uses it in production. */
async function decryptEverything(ring: KeyRing) {
  const targets = await Promise.all(
    rows.targets.map(async ({ id }) => {
      const [row] = await db.select().from(integrationTargets).where(eq(integrationTargets.id, id));
      return decryptTargetSecrets(ring, id, row!.secretsCiphertext);
    }),
  );
  const credentials = await Promise.all(
    rows.connections.map(async ({ id }) => (await readCurrentCredential(db, ring, id))?.credential),
  );
  const [session] = await db
    .select()
    .from(oauthSessions)
    .where(eq(oauthSessions.id, rows.oauthSessionId));
  const [subscription] = await db
    .select()
    .from(webhookSubscriptions)
    .where(eq(webhookSubscriptions.id, rows.subscriptionId));
  return {
    targets,
    credentials,
    pkce: decryptField(
      ring,
      { ...PKCE, id: rows.oauthSessionId },
      session!.pkceVerifierCiphertext!,
    ),
    webhook: decryptField(
      ring,
      { ...WEBHOOK, id: rows.subscriptionId },
      subscription!.secretCiphertext,
    ),
    previousWebhook: decryptSubscriptionSecret(
      ring,
      rows.subscriptionId,
      "previous",
      subscription!.previousSecretCiphertext!,
    ),
    cachedToken: await cachedToken(ring),
  };
}

async function keyVersions(): Promise<number[]> {
  const all = [
    ...(await db.select({ c: integrationTargets.secretsCiphertext }).from(integrationTargets)),
    ...(await db.select({ c: connectionCredentials.secretCiphertext }).from(connectionCredentials)),
    ...(await db.select({ c: cachedCredentials.valueCiphertext }).from(cachedCredentials)),
    ...(await db.select({ c: oauthSessions.pkceVerifierCiphertext }).from(oauthSessions)),
    ...(await db.select({ c: webhookSubscriptions.secretCiphertext }).from(webhookSubscriptions)),
    ...(await db
      .select({ c: webhookSubscriptions.previousSecretCiphertext })
      .from(webhookSubscriptions)),
  ];
  return [...new Set(all.flatMap(({ c }) => (c === null ? [] : [ciphertextKeyVersion(c)])))];
}

beforeAll(async () => {
  t = await createTestApp();
  db = t.deps.database.db;
  const deps = { keyRing: ring1, registry, clock: t.clock };
  const organizationId = await seedOrganization(db, t.clock);
  for (const n of [1, 2, 3]) {
    const secrets = { clientId: `Iv1.client${n}`, clientSecret: `github-client-secret-${n}` };
    const target = await seedTarget(db, deps, { variantId: "github-cloud", secrets });
    rows.targets.push({ id: target.id, secrets });
    const apiKey = `ghp_token_${n}`;
    const connection = await seedConnection(db, deps, {
      organizationId,
      target,
      methodId: "personal-access-token",
      credential: { kind: "secret-fields", fields: { token: `superseded-${n}` } },
    });
    // A second version: superseded versions are re-encrypted too, so old keys can go.
    await db.transaction((tx) =>
      writeCredentialVersion(tx, ring1, {
        connectionId: connection.id,
        organizationId,
        credential: { kind: "secret-fields", fields: { token: apiKey } },
        now: t.clock.now(),
      }),
    );
    rows.connections.push({ id: connection.id, apiKey });
  }
  // A target without secrets has nothing to rotate.
  await seedTarget(db, deps, { variantId: "openai" });

  // An installation token the credential cache holds.
  rows.cachedConnectionId = rows.connections[0]!.id;
  await createCredentialCache({ database: t.deps.database, keyRing: ring1, clock: t.clock }).obtain(
    { connectionId: rows.cachedConnectionId, organizationId, resolver: "r", scope: 1 },
    async () => ({
      value: "ghs_cached_installation_token",
      expiresAt: new Date(t.clock.now().getTime() + 3_600_000),
    }),
  );

  rows.oauthSessionId = newId("oauthSession", t.clock.now());
  await db.insert(oauthSessions).values({
    id: rows.oauthSessionId,
    organizationId,
    principal: "tok_fixture",
    targetId: rows.targets[0]!.id,
    flow: "oauth2",
    methodId: "oauth2",
    stateHash: "state-hash",
    pkceVerifierCiphertext: encryptField(
      ring1,
      { ...PKCE, id: rows.oauthSessionId },
      "pkce-verifier-value",
    ),
    redirectUri: "http://127.0.0.1/callback",
    expiresAt: new Date(t.clock.now().getTime() + 600_000),
  });
  rows.subscriptionId = newId("webhookSubscription", t.clock.now());
  await db.insert(webhookSubscriptions).values({
    id: rows.subscriptionId,
    organizationId,
    url: "https://hooks.example.test/keyway",
    eventTypes: ["github.push"],
    secretCiphertext: encryptField(
      ring1,
      { ...WEBHOOK, id: rows.subscriptionId },
      "whsec_subscription",
    ),
    // A rotation in its overlap: the previous secret is encrypted too.
    previousSecretCiphertext: encryptSubscriptionSecret(
      ring1,
      rows.subscriptionId,
      "previous",
      "whsec_previous",
    ),
    previousSecretExpiresAt: new Date(t.clock.now().getTime() + 3_600_000),
    createdBy: "tok_fixture",
  });

  // Two signed checkpoints of the organization's audit chain, made under key 1.
  const sealer = createAuditSealer({
    db,
    keyRing: ring1,
    clock: t.clock,
    logger: createMemoryLogger(),
  });
  for (const subjectId of ["first", "second"]) {
    await appendAudit(db, t.clock, {
      organizationId,
      actor: "test",
      action: "test.appended",
      subjectType: "test",
      subjectId,
    });
    await sealer.sealNow({ checkpoint: true });
  }
  await sealer.close();
});
afterAll(async () => {
  await t.close();
});

describe("rotateKeys", () => {
  it("re-encrypts every ciphertext under the newest key, after which the old key can be removed", async () => {
    const before = await decryptEverything(ring1);
    expect(await keyVersions()).toEqual([1]);
    expect(await verifyAuditChain(db, ring2)).toMatchObject({
      ok: false,
      firstInvalid: { reason: "checkpoint_invalid" },
    });

    const result = await rotateKeys(db, ring12, { clock: t.clock, actor: "test", batchSize: 2 });
    expect(result.complete).toBe(true);
    expect(result.keyVersion).toBe(2);
    expect(
      result.columns.map(({ table, column, scanned, reencrypted, failed }) => [
        `${table}.${column}`,
        scanned,
        reencrypted,
        failed,
      ]),
    ).toEqual([
      ["integration_targets.secrets_ciphertext", 3, 3, 0],
      ["connection_credentials.secret_ciphertext", 6, 6, 0],
      ["cached_credentials.value_ciphertext", 1, 1, 0],
      ["oauth_sessions.pkce_verifier_ciphertext", 1, 1, 0],
      ["webhook_subscriptions.secret_ciphertext", 1, 1, 0],
      ["webhook_subscriptions.previous_secret_ciphertext", 1, 1, 0],
      ["audit_checkpoints.signature", 2, 2, 0],
    ]);
    expect(await keyVersions()).toEqual([2]);
    expect(await decryptEverything(ring12)).toEqual(before);

    // Key 1 removed from the ring: everything still decrypts.
    const after = await decryptEverything(ring2);
    expect(after).toEqual(before);
    expect(after.credentials.map((c) => c?.kind === "secret-fields" && c.fields.token)).toEqual(
      rows.connections.map((c) => c.apiKey),
    );
    expect(after.pkce).toBe("pkce-verifier-value");
    expect(after.cachedToken).toBe("ghs_cached_installation_token");
    expect(after.previousWebhook).toBe("whsec_previous");
    // The audit checkpoints were re-signed: the chain verifies without key 1.
    expect(await verifyAuditChain(db, ring2)).toMatchObject({ ok: true });
    // ...and the ring without key 2 no longer can.
    await expect(decryptEverything(ring1)).rejects.toMatchObject({ code: "UNKNOWN_KEY_VERSION" });

    const [entry] = await db.select().from(auditLog).where(eq(auditLog.action, "keys.rotated"));
    expect(entry).toMatchObject({ actor: "test", subjectId: "v2", details: { complete: true } });
  });

  it("rewrites nothing when run again", async () => {
    const result = await rotateKeys(db, ring2, { clock: t.clock, actor: "test" });
    expect(result.columns.map((c) => c.reencrypted)).toEqual([0, 0, 0, 0, 0, 0, 0]);
    expect(result.complete).toBe(true);
  });

  it("refuses a ciphertext copied to another row, and leaves it for the operator", async () => {
    const [source, victim] = rows.targets;
    const [sourceRow] = await db
      .select()
      .from(integrationTargets)
      .where(eq(integrationTargets.id, source!.id));
    await db
      .update(integrationTargets)
      .set({ secretsCiphertext: sourceRow!.secretsCiphertext })
      .where(eq(integrationTargets.id, victim!.id));
    expect(() => decryptTargetSecrets(ring2, victim!.id, sourceRow!.secretsCiphertext)).toThrow(
      DecryptError,
    );

    const [credSource, credVictim] = await db
      .select()
      .from(connectionCredentials)
      .where(eq(connectionCredentials.version, 2));
    await db
      .update(connectionCredentials)
      .set({ secretCiphertext: credSource!.secretCiphertext })
      .where(eq(connectionCredentials.id, credVictim!.id));
    await expect(readCurrentCredential(db, ring2, credVictim!.connectionId)).rejects.toMatchObject({
      code: "DECRYPT_FAILED",
    });

    // A checkpoint changed after it was signed is not laundered by re-signing it.
    const [forged, kept] = await db
      .select()
      .from(auditCheckpoints)
      .orderBy(asc(auditCheckpoints.id));
    await db
      .update(auditCheckpoints)
      .set({ chainSeq: forged!.chainSeq + 1 })
      .where(eq(auditCheckpoints.id, forged!.id));

    const result = await rotateKeys(db, ring23, { clock: t.clock, actor: "test" });
    expect(result.complete).toBe(false);
    const byColumn = Object.fromEntries(result.columns.map((c) => [c.table, c]));
    expect(byColumn.integration_targets).toMatchObject({
      reencrypted: 2,
      failed: 1,
      failedIds: [victim!.id],
    });
    expect(byColumn.connection_credentials).toMatchObject({
      reencrypted: 5,
      failed: 1,
      failedIds: [credVictim!.id],
    });
    expect(byColumn.audit_checkpoints).toMatchObject({
      reencrypted: 1,
      failed: 1,
      failedIds: [String(forged!.id)],
    });
    const checkpoints = await db.select().from(auditCheckpoints).orderBy(asc(auditCheckpoints.id));
    expect(checkpoints.map((c) => [c.id, c.keyVersion])).toEqual([
      [forged!.id, 2],
      [kept!.id, 3],
    ]);
    // The untouched rows still decrypt under the new ring.
    expect(
      decryptTargetSecrets(
        ring23,
        source!.id,
        (
          await db.select().from(integrationTargets).where(eq(integrationTargets.id, source!.id))
        )[0]!.secretsCiphertext,
      ),
    ).toEqual(source!.secrets);
  });
});
