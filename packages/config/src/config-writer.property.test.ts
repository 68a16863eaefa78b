import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportPrivateKeyPem, generateSigningKeyPair } from "@keyway/crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringifyConfig } from "./config-writer";
import { loadConfig } from "./load-config";
import { type KeywayConfigInput, keywayConfigSchema } from "./schema";

// Key generation is slow and random: draw from a fixed pool so runs can shrink and replay.
const keyPool = await Promise.all(
  Array.from({ length: 3 }, async () => {
    const pair = await generateSigningKeyPair();
    return { ...pair, pem: await exportPrivateKeyPem(pair.privateJwk) };
  }),
);
const signingKey = fc.constantFrom(...keyPool);
const privateKeyText = signingKey.chain((key) =>
  fc.constantFrom(key.pem, JSON.stringify(key.privateJwk)),
);

/** Any Unicode text, including quotes, backslashes, control characters and emoji. */
const text = fc.string({ unit: "binary", minLength: 1, maxLength: 16 });
// `__proto__` and `constructor` are refused by the loader (see load-config.test.ts).
const tableKey = fc
  .string({ unit: "binary", maxLength: 12 })
  .filter((key) => key !== "__proto__" && key !== "constructor");
const port = fc.integer({ min: 0, max: 65535 });
const httpUrl = fc.webUrl({ validSchemes: ["http", "https"] });
const pathSegment = fc
  .stringMatching(/^[a-z0-9_-][a-z0-9._-]{0,7}$/)
  .filter((s) => s !== "." && s !== "..");
const absolutePath = fc
  .array(pathSegment, { minLength: 1, maxLength: 3 })
  .map((parts) => `/${parts.join("/")}`);
const id = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,15}$/);
const targetKey = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/);
const hostPattern = fc
  .domain()
  .chain((domain) => fc.constantFrom(domain.toLowerCase(), `*.${domain.toLowerCase()}`));
const base64Of32Bytes = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((bytes) => Buffer.from(bytes).toString("base64"));

/** TOML values as a target's free-form config may hold them. */
const tomlValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    text,
    fc.string({ unit: "binary", maxLength: 4 }),
    fc.boolean(),
    fc.maxSafeInteger(),
    fc.double({ noNaN: true }).filter((n) => !Object.is(n, -0)),
    fc.array(tie("value"), { maxLength: 3 }),
    fc.dictionary(tableKey, tie("value"), { maxKeys: 3 }),
  ),
})).value;

const masterKeyRing = fc
  .uniqueArray(fc.integer({ min: 1, max: 10_000 }), { minLength: 1, maxLength: 4 })
  .chain((versions) =>
    fc.record({
      current: fc.constantFrom(...versions),
      keys: fc.tuple(
        ...versions.map((version) => base64Of32Bytes.map((key) => ({ version, key }))),
      ),
    }),
  );

const sessionSigning = fc
  .uniqueArray(fc.record({ kid: text, private_key: privateKeyText }), {
    minLength: 1,
    maxLength: 3,
    selector: (key) => key.kid,
  })
  .chain((keys) =>
    fc.record({
      current_kid: fc.constantFrom(...keys.map((key) => key.kid)),
      keys: fc.constant(keys),
    }),
  );

const optional = { requiredKeys: [] };

const configInput: fc.Arbitrary<KeywayConfigInput> = fc.record(
  {
    api: fc.record(
      {
        host: text,
        port,
        public_url: httpUrl,
        request_timeout_ms: fc.integer({ min: 100, max: 600_000 }),
      },
      optional,
    ),
    database: fc.record(
      {
        url: fc.option(
          fc.webUrl().map((url) => url.replace(/^https?/, "postgres")),
          { nil: undefined },
        ),
        pool_size: fc.integer({ min: 1, max: 1000 }),
        connect_timeout_ms: fc.integer({ min: 1, max: 600_000 }),
        statement_timeout_ms: fc.integer({ min: 0, max: 86_400_000 }),
        lock_timeout_ms: fc.integer({ min: 0, max: 86_400_000 }),
        idle_in_transaction_timeout_ms: fc.integer({ min: 0, max: 86_400_000 }),
        embedded: fc.record({ data_dir: absolutePath, port }, { requiredKeys: ["data_dir"] }),
      },
      { requiredKeys: ["embedded"] },
    ),
    keys: fc.record({ master: masterKeyRing, session_signing: sessionSigning }, optional),
    sessions: fc.record(
      { issuer: text, audience: text, token_ttl_seconds: fc.integer({ min: 60, max: 86_400 }) },
      optional,
    ),
    operator: fc.record({
      token_hashes: fc.array(fc.stringMatching(/^[0-9a-f]{64}$/), { maxLength: 3 }),
    }),
    oidc: fc.record(
      {
        issuer: httpUrl,
        audience: fc.oneof(text, fc.array(text, { minLength: 1, maxLength: 3 })),
        jwks_url: httpUrl,
        org_claim: text,
        role_claim: text,
        role_map: fc.dictionary(
          tableKey.filter((k) => k.length > 0),
          fc.constantFrom("admin", "member", "viewer"),
          { maxKeys: 3 },
        ),
      },
      { requiredKeys: ["issuer", "audience"] },
    ),
    gateway: fc.record(
      {
        host: text,
        port,
        admin_host: text,
        admin_port: port,
        public_proxy_url: httpUrl,
        control_plane_url: httpUrl,
        ca_cert_path: absolutePath,
        ca_key_path: absolutePath,
        upstream_ca_path: absolutePath,
        egress: fc.record(
          {
            default_policy: fc.constantFrom("allow", "deny"),
            allow_hosts: fc.array(hostPattern, { maxLength: 3 }),
            allow_private_networks: fc.boolean(),
          },
          optional,
        ),
        timeouts: fc.record(
          {
            connect_ms: fc.integer({ min: 1, max: 600_000 }),
            headers_ms: fc.integer({ min: 1, max: 600_000 }),
            body_idle_ms: fc.integer({ min: 1, max: 600_000 }),
          },
          optional,
        ),
        rate_limit: fc.record(
          {
            requests_per_second: fc.double({ min: 0, max: 10_000, noNaN: true }),
            burst: fc.integer({ min: 1, max: 10_000 }),
          },
          optional,
        ),
        circuit_breaker: fc.record(
          {
            failure_threshold: fc.integer({ min: 0, max: 100 }),
            window_ms: fc.integer({ min: 1, max: 600_000 }),
            cool_down_ms: fc.integer({ min: 1, max: 600_000 }),
          },
          optional,
        ),
        retries: fc.record({ max_retries: fc.integer({ min: 0, max: 5 }) }, optional),
        identity: fc.oneof(
          fc.record({ gateway_id: id, private_key: privateKeyText }),
          fc.record({ gateway_id: id, private_key_path: absolutePath }),
        ),
      },
      { requiredKeys: ["ca_cert_path", "ca_key_path"] },
    ),
    internal: fc.record(
      {
        audience: text,
        gateways: fc.uniqueArray(
          fc.record({ id, public_jwk: signingKey.map((key) => key.publicJwk) }),
          { maxLength: 3, selector: (gateway) => gateway.id },
        ),
      },
      optional,
    ),
    webhooks: fc
      .record(
        {
          body_limit_bytes: fc.integer({ min: 1, max: 64 * 1024 * 1024 }),
          raw_body_retention_days: fc.integer({ min: 1, max: 3650 }),
          dedupe_retention_hours: fc.integer({ min: 72, max: 87_600 }),
          event_retention_days: fc.integer({ min: 1, max: 3650 }),
          attempt_retention_days: fc.integer({ min: 1, max: 3650 }),
          retention_batch_size: fc.integer({ min: 1, max: 100_000 }),
          github_redelivery_lookback_hours: fc.integer({ min: 1, max: 72 }),
          github_redelivery_max_pages: fc.integer({ min: 1, max: 100 }),
          github_redelivery_max_per_run: fc.integer({ min: 1, max: 1000 }),
          secret_rotation_overlap_hours: fc.integer({ min: 0, max: 720 }),
          allow_private_subscribers: fc.boolean(),
          delivery: fc.record(
            {
              connect_timeout_ms: fc.integer({ min: 1, max: 120_000 }),
              response_timeout_ms: fc.integer({ min: 1, max: 600_000 }),
            },
            optional,
          ),
        },
        optional,
      )
      // Events are kept at least as long as their dedupe keys (a cross-field rule).
      .map((webhooks) => {
        const hours = webhooks.dedupe_retention_hours ?? 72;
        return (webhooks.event_retention_days ?? 30) * 24 >= hours
          ? webhooks
          : { ...webhooks, event_retention_days: Math.ceil(hours / 24) };
      }),
    worker: fc.record({ concurrency: fc.integer({ min: 1, max: 1024 }) }, optional),
    targets: fc.dictionary(
      targetKey,
      fc.record(
        {
          variant: targetKey,
          enabled: fc.boolean(),
          display_name: text,
          config: fc.dictionary(tableKey, tomlValue, { maxKeys: 4 }),
          secrets: fc.dictionary(tableKey, text, { maxKeys: 3 }),
        },
        { requiredKeys: ["variant"] },
      ),
      { maxKeys: 3 },
    ),
    log: fc.record({
      level: fc.constantFrom("trace", "debug", "info", "warn", "error", "fatal", "silent"),
    }),
  },
  { requiredKeys: ["database", "gateway"] },
);

describe("config file writer", () => {
  it("writes configs that load back to the same values", async () => {
    const dir = await mkdtemp(join(tmpdir(), "keyway-config-property-"));
    const path = join(dir, "keyway.toml");
    await fc
      .assert(
        fc.asyncProperty(configInput, async (input) => {
          const expected = keywayConfigSchema.parse(input);
          await writeFile(
            path,
            stringifyConfig(input, { header: "generated\n\nby a property test" }),
          );
          expect(await loadConfig({ path, env: {} })).toEqual(expected);
        }),
        { numRuns: 200 },
      )
      .finally(() => rm(dir, { recursive: true, force: true }));
    // 200 file round trips: seconds on a loaded 2-core machine (a correctness check, not a timing).
  }, 60_000);
});
