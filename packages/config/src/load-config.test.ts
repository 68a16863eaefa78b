import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateMasterKey, generateSigningKeyPair, hashToken } from "@keyway/crypto";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, requireSetting } from "./config-error";
import { type Env, loadConfig } from "./load-config";

/** Every temporary directory the tests make, removed at the end. */
const made: string[] = [];
afterAll(() => Promise.all(made.map((dir) => rm(dir, { recursive: true, force: true }))));

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "keyway-config-"));
  made.push(dir);
  return dir;
}

async function configFile(text: string): Promise<{ dir: string; path: string }> {
  const dir = await tempDir();
  const path = join(dir, "keyway.toml");
  await writeFile(path, text);
  return { dir, path };
}

async function load(text: string, env: Env = {}) {
  const { path } = await configFile(text);
  return loadConfig({ path, env });
}

async function configError(promise: Promise<unknown>): Promise<ConfigError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (error instanceof ConfigError) return error;
  throw new Error(`expected a ConfigError, got ${String(error)}`);
}

const masterKey = generateMasterKey();

describe("loadConfig: file", () => {
  it("parses a valid file and applies defaults", async () => {
    const { dir, path } = await configFile(`
[api]
port = 9000

[keys.master]
current = 1

[[keys.master.keys]]
version = 1
key = "${masterKey}"

[targets.github-cloud]
variant = "github-cloud"
config = { appSlug = "keyway" }
secrets = { webhookSecret = "s3cret" }
`);
    const config = await loadConfig({ path, env: {} });
    expect(config.api).toEqual({
      host: "127.0.0.1",
      port: 9000,
      public_url: "http://127.0.0.1:9000",
      request_timeout_ms: 10_000,
      allowed_redirect_origins: [],
    });
    expect(config.database).toEqual({
      pool_size: 10,
      connect_timeout_ms: 5_000,
      statement_timeout_ms: 10_000,
      lock_timeout_ms: 5_000,
      idle_in_transaction_timeout_ms: 15_000,
      embedded: { data_dir: join(dir, ".keyway/postgres"), port: 54329 },
    });
    expect(config.keys.master).toEqual({ current: 1, keys: [{ version: 1, key: masterKey }] });
    expect(config.keys.session_signing).toBeUndefined();
    expect(config.sessions).toEqual({
      issuer: "keyway",
      audience: "keyway-gateway",
      token_ttl_seconds: 900,
      max_lifetime_seconds: 86_400,
    });
    expect(config.operator.token_hashes).toEqual([]);
    expect(config.oidc).toBeUndefined();
    expect(config.gateway).toMatchObject({
      host: "127.0.0.1",
      port: 8081,
      admin_port: 8082,
      public_proxy_url: "http://127.0.0.1:8081",
      control_plane_url: "http://127.0.0.1:9000",
      ca_cert_path: join(dir, ".keyway/gateway-ca.pem"),
      ca_key_path: join(dir, ".keyway/gateway-ca-key.pem"),
      egress: { default_policy: "deny", allow_hosts: [], allow_private_networks: false },
    });
    expect(config.internal).toEqual({ audience: "keyway-internal", gateways: [] });
    expect(config.webhooks).toEqual({
      body_limit_bytes: 1_048_576,
      raw_body_retention_days: 7,
      dedupe_retention_hours: 72,
      event_retention_days: 30,
      attempt_retention_days: 14,
      retention_batch_size: 1000,
      github_redelivery_lookback_hours: 24,
      github_redelivery_max_pages: 10,
      github_redelivery_max_per_run: 50,
      secret_rotation_overlap_hours: 24,
      allow_private_subscribers: false,
      delivery: { connect_timeout_ms: 10_000, response_timeout_ms: 30_000 },
    });
    expect(config.worker).toEqual({
      concurrency: 4,
      polling_interval_seconds: 0.5,
      maintenance_interval_seconds: 30,
      shutdown_timeout_ms: 30_000,
      target_health_timeout_ms: 5_000,
      metrics_host: "127.0.0.1",
      metrics_port: 8083,
    });
    expect(config.oauth2).toEqual({
      proactive_refresh_window_seconds: 600,
      token_request_timeout_ms: 10_000,
    });
    expect(config.telemetry).toEqual({
      traces: "off",
      otlp_endpoint: "http://127.0.0.1:4318/v1/traces",
    });
    expect(config.targets).toEqual({
      "github-cloud": {
        variant: "github-cloud",
        enabled: true,
        config: { appSlug: "keyway" },
        secrets: { webhookSecret: "s3cret" },
      },
    });
    expect(config.log).toEqual({ level: "info" });
  });

  it("treats a missing default file as empty and reads KEYWAY_CONFIG", async () => {
    const cwd = await tempDir();
    const config = await loadConfig({ env: {}, cwd });
    expect(config.api.port).toBe(8080);
    expect(config.database.embedded.data_dir).toBe(join(cwd, ".keyway/postgres"));

    const { path } = await configFile("[worker]\nconcurrency = 9\n");
    expect((await loadConfig({ env: { KEYWAY_CONFIG: path }, cwd })).worker.concurrency).toBe(9);
  });

  it("drops trailing slashes from base URLs but keeps the OIDC issuer exactly as written", async () => {
    const config = await load(`
[api]
public_url = "https://keyway.example.com/"
[oidc]
issuer = "https://tenant.example-idp.com/"
audience = ["keyway", "keyway-cli"]
role_map = { "Keyway Admins" = "admin" }
`);
    expect(config.api.public_url).toBe("https://keyway.example.com");
    expect(config.gateway.control_plane_url).toBe("https://keyway.example.com");
    expect(config.oidc).toEqual({
      issuer: "https://tenant.example-idp.com/",
      audience: ["keyway", "keyway-cli"],
      org_claim: "org_id",
      role_claim: "role",
      role_map: { "Keyway Admins": "admin" },
    });
  });

  it("takes origins, and only origins, as allowed redirect targets", async () => {
    const config = await load(
      '[api]\nallowed_redirect_origins = ["https://Console.Example.com", "http://127.0.0.1:3000/"]\n',
    );
    expect(config.api.allowed_redirect_origins).toEqual([
      "https://console.example.com",
      "http://127.0.0.1:3000",
    ]);
    const error = await configError(
      load('[api]\nallowed_redirect_origins = ["https://console.example.com/app"]\n'),
    );
    expect(error.message).toBe(
      "config error: api.allowed_redirect_origins.0: expected an origin (scheme, host and port only)",
    );
  });

  it("requires a file named explicitly to exist", async () => {
    const error = await configError(loadConfig({ path: "/nonexistent/keyway.toml", env: {} }));
    expect(error.code).toBe("CONFIG_UNREADABLE");
    expect(error.message).toBe("config error: /nonexistent/keyway.toml: file not found");
  });

  it("reports TOML syntax errors by position without quoting the document", async () => {
    const { path } = await configFile('[api]\nport = 1\npublic_url = "http://x\n');
    const error = await configError(loadConfig({ path, env: {} }));
    expect(error.code).toBe("CONFIG_UNREADABLE");
    expect(error.message).toMatch(
      /^config error: .*keyway\.toml: invalid TOML at line 3, column \d+: /,
    );
    expect(error.message).not.toContain("http://x");
  });

  it("names the key of a value with the wrong type", async () => {
    const error = await configError(load('[api]\nport = "abc"\n'));
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.message).toBe('config error: api.port: expected number, got "abc"');
    expect(error.problems).toEqual([{ key: "api.port", message: 'expected number, got "abc"' }]);
  });

  it("names unknown keys, at any depth", async () => {
    const error = await configError(
      load("[api]\nprot = 1\n[gateway.egress]\npolcy = 'deny'\n[metrics]\n"),
    );
    expect(error.message.split("\n")).toEqual([
      "config error: api.prot: unknown key",
      "config error: gateway.egress.polcy: unknown key",
      "config error: metrics: unknown key",
    ]);
  });

  it("explains range, enum, format and cross-field problems", async () => {
    const error = await configError(
      load(`
[api]
port = 70000
public_url = "ftp://example.com"
[gateway.egress]
default_policy = "maybe"
allow_hosts = ["*.Example.com"]
[webhooks]
dedupe_retention_hours = 24
[worker]
concurrency = 1.5
[keys.master]
current = 2
[[keys.master.keys]]
version = 1
key = "${masterKey}"
[targets.Bad_Key]
variant = "x"
`),
    );
    expect(error.message.split("\n").sort()).toEqual(
      [
        "config error: api.port: must be at most 65535, got 70000",
        'config error: api.public_url: expected an http:// or https:// URL, got "ftp://example.com"',
        'config error: gateway.egress.default_policy: expected "allow" or "deny", got "maybe"',
        "config error: gateway.egress.allow_hosts.0: expected a lower-case host name, optionally starting with '*.', got \"*.Example.com\"",
        "config error: webhooks.dedupe_retention_hours: must be at least 72 (delivery ids are deduplicated for at least 72 hours), got 24",
        "config error: worker.concurrency: expected integer, got 1.5",
        "config error: keys.master.current: no key with version 2 in keys",
        "config error: targets.Bad_Key: invalid key: expected lower-case letters, digits and '-', starting with a letter",
      ].sort(),
    );
  });

  it("keeps webhook events at least as long as their dedupe keys", async () => {
    const error = await configError(
      load(`
[webhooks]
dedupe_retention_hours = 100
event_retention_days = 4
github_redelivery_lookback_hours = 96
`),
    );
    expect(error.message.split("\n").sort()).toEqual([
      "config error: webhooks.event_retention_days: must keep events at least as long as webhooks.dedupe_retention_hours (100 hours), got 4 days",
      "config error: webhooks.github_redelivery_lookback_hours: must be at most 72, got 96",
    ]);
    const config = await load(
      "[webhooks]\ndedupe_retention_hours = 96\nevent_retention_days = 4\n",
    );
    expect(config.webhooks.event_retention_days).toBe(4);
  });

  it("defaults the gateway's timeouts, rate limit, circuit breaker, retries and plain-HTTP client", async () => {
    const config = await load("");
    expect(config.gateway.timeouts).toEqual({
      connect_ms: 10_000,
      headers_ms: 300_000,
      body_idle_ms: 300_000,
    });
    expect(config.gateway.rate_limit).toEqual({ requests_per_second: 100, burst: 200 });
    expect(config.gateway.circuit_breaker).toEqual({
      failure_threshold: 5,
      window_ms: 30_000,
      cool_down_ms: 30_000,
    });
    expect(config.gateway.retries).toEqual({ max_retries: 1 });
    expect(config.gateway.plain_http_client).toBe("keyway");
    expect(
      (await load('[gateway]\nplain_http_client = "undici"\n')).gateway.plain_http_client,
    ).toBe("undici");
    const error = await configError(
      load(
        '[gateway]\nplain_http_client = "llhttp"\n[gateway.rate_limit]\nrequests_per_second = -1\nburst = 0\n[gateway.retries]\nmax_retries = 9\n[gateway.timeouts]\nconnect = 5\n',
      ),
    );
    expect(error.message.split("\n").sort()).toEqual(
      [
        'config error: gateway.plain_http_client: expected "keyway" or "undici", got "llhttp"',
        "config error: gateway.rate_limit.requests_per_second: must be at least 0, got -1",
        "config error: gateway.rate_limit.burst: must be at least 1, got 0",
        "config error: gateway.retries.max_retries: must be at most 5, got 9",
        "config error: gateway.timeouts.connect: unknown key",
      ].sort(),
    );
  });

  it("reports missing required keys", async () => {
    const error = await configError(load("[keys.session_signing]\nkeys = []\n"));
    expect(error.message.split("\n")).toContain(
      "config error: keys.session_signing.current_kid: missing, expected string",
    );
  });

  it("never repeats secret values in errors", async () => {
    const leaked = "c3VwZXJzZWNyZXQ=";
    const error = await configError(
      load(`
[database]
url = "mysql://user:hunter2@db/keyway"
[keys.master]
current = 1
[[keys.master.keys]]
version = 1
key = "${leaked}"
[gateway.identity]
gateway_id = "gw-1"
private_key = "not-a-key-hunter3"
[targets.github-cloud]
variant = "github-cloud"
secrets = { webhookSecret = 42 }
[targets.github-cloud.config]
clientSecret = 7
`),
    );
    expect(error.message).toContain(
      "database.url: expected a postgres:// or postgresql:// URL, got a string (value hidden)",
    );
    expect(error.message).toContain("keys.master.keys.0.key: expected base64 of 32 bytes");
    expect(error.message).toContain(
      "gateway.identity.private_key: expected an Ed25519 private key",
    );
    expect(error.message).toContain(
      "targets.github-cloud.secrets.webhookSecret: expected string, got a number (value hidden)",
    );
    for (const secret of [leaked, "hunter2", "hunter3", "42"])
      expect(error.message).not.toContain(secret);
  });

  it("validates gateway identities and trusted gateways", async () => {
    const pair = await generateSigningKeyPair();
    const error = await configError(
      load(`
[gateway.identity]
gateway_id = "gw-1"
private_key_path = "gw.pem"
private_key = ${JSON.stringify(JSON.stringify(pair.privateJwk))}
[[internal.gateways]]
id = "gw-1"
public_jwk = { kty = "OKP", crv = "Ed25519", x = "${pair.publicJwk.x}", d = "${pair.privateJwk.d}" }
`),
    );
    expect(error.message.split("\n")).toEqual([
      "config error: gateway.identity.private_key: set exactly one of private_key and private_key_path",
      "config error: internal.gateways.0.public_jwk.d: a public key was expected but this JWK holds a private key",
    ]);
    expect(error.message).not.toContain(pair.privateJwk.d);

    const duplicate = `[[internal.gateways]]
id = "gw-1"
public_jwk = { kty = "OKP", crv = "Ed25519", x = "${pair.publicJwk.x}" }
`;
    expect((await configError(load(duplicate + duplicate))).message).toBe(
      "config error: internal.gateways.1.id: duplicate gateway id gw-1",
    );
  });

  it("refuses keys that would become the config's prototype", async () => {
    const error = await configError(
      load('[targets.x]\nvariant = "x"\n[targets.x.config]\n__proto__ = { a = 1 }\n'),
    );
    expect(error.code).toBe("CONFIG_UNREADABLE");
    expect(error.message).toMatch(/invalid TOML at line 4/);

    const fromEnv = await configError(
      load("", { KEYWAY_TARGETS__X: '{"variant":"x","config":{"__proto__":{"a":1}}}' }),
    );
    expect(fromEnv.message).toBe(
      "config error: (from KEYWAY_TARGETS__X): JSON value holds a __proto__ or constructor key",
    );
  });

  it("resolves relative paths against the config file's directory", async () => {
    const { dir, path } = await configFile(`
[database.embedded]
data_dir = "pg"
[gateway]
ca_cert_path = "/etc/keyway/ca.pem"
upstream_ca_path = "trust/internal-cas.pem"
[gateway.identity]
gateway_id = "gw-1"
private_key_path = "keys/gw.pem"
`);
    const config = await loadConfig({ path, env: {} });
    expect(config.database.embedded.data_dir).toBe(join(dir, "pg"));
    expect(config.gateway.ca_cert_path).toBe("/etc/keyway/ca.pem");
    expect(config.gateway.upstream_ca_path).toBe(join(dir, "trust/internal-cas.pem"));
    expect(config.gateway.identity?.private_key_path).toBe(join(dir, "keys/gw.pem"));
  });
});

describe("loadConfig: environment overrides", () => {
  it("wins over the file and is coerced by the schema", async () => {
    const token = hashToken("kw_op_x");
    const config = await load(
      `
[api]
port = 8080
[database]
url = "postgres://file/keyway"
[gateway.egress]
allow_hosts = ["example.com"]
[targets.github-cloud]
variant = "github-cloud"
[targets.github-cloud.secrets]
clientId = "from-file"
`,
      {
        KEYWAY_API__PORT: "9090",
        KEYWAY_DATABASE__URL: "postgres://env/keyway",
        KEYWAY_GATEWAY__EGRESS__ALLOW_PRIVATE_NETWORKS: "true",
        KEYWAY_GATEWAY__EGRESS__DEFAULT_POLICY: "allow",
        KEYWAY_GATEWAY__EGRESS__ALLOW_HOSTS: '["a.example", "*.b.example"]',
        KEYWAY_OPERATOR__TOKEN_HASHES: JSON.stringify([token]),
        KEYWAY_TARGETS__GITHUB_CLOUD__ENABLED: "false",
        KEYWAY_TARGETS__GITHUB_CLOUD__SECRETS__WEBHOOK_SECRET: "from-env",
        KEYWAY_TARGETS__GITHUB_CLOUD__CONFIG__API_BASE_URL: "https://ghe.example/api/v3",
        KEYWAY_TARGETS__GITHUB_CLOUD__CONFIG__RETRIES: "3",
        KEYWAY_LOG__LEVEL: "debug",
        KEYWAY_CONFIG_UNRELATED: "ignored: no double underscore",
        KEYWAY_WORKER__CONCURRENCY: "",
      },
    );
    expect(config.api.port).toBe(9090);
    expect(config.api.public_url).toBe("http://127.0.0.1:9090");
    expect(config.database.url).toBe("postgres://env/keyway");
    expect(config.gateway.egress).toEqual({
      default_policy: "allow",
      allow_hosts: ["a.example", "*.b.example"],
      allow_private_networks: true,
    });
    expect(config.operator.token_hashes).toEqual([token]);
    expect(config.targets["github-cloud"]).toEqual({
      variant: "github-cloud",
      enabled: false,
      config: { apiBaseUrl: "https://ghe.example/api/v3", retries: 3 },
      secrets: { clientId: "from-file", webhookSecret: "from-env" },
    });
    expect(config.log.level).toBe("debug");
    expect(config.worker.concurrency).toBe(4);
  });

  it("combines a JSON table with more specific variables", async () => {
    const config = await load("", {
      KEYWAY_TARGETS__LINEAR: JSON.stringify({
        variant: "linear",
        enabled: true,
        secrets: { a: "1" },
      }),
      KEYWAY_TARGETS__LINEAR__ENABLED: "0",
    });
    expect(config.targets.linear).toEqual({
      variant: "linear",
      enabled: false,
      config: {},
      secrets: { a: "1" },
    });
  });

  it("names the variable and the key of a bad value", async () => {
    const error = await configError(
      load("[api]\nport = 8080\n", {
        KEYWAY_API__PORT: "abc",
        KEYWAY_GATEWAY__EGRESS__ALLOW_PRIVATE_NETWORKS: "maybe",
        KEYWAY_API__PROT: "1",
        KEYWAY_TARGETS__X: "{not json",
      }),
    );
    expect(error.message.split("\n").sort()).toEqual(
      [
        'config error: api.port (from KEYWAY_API__PORT): expected number, got "abc"',
        'config error: gateway.egress.allow_private_networks (from KEYWAY_GATEWAY__EGRESS__ALLOW_PRIVATE_NETWORKS): expected boolean, got "maybe"',
        "config error: api.prot (from KEYWAY_API__PROT): unknown key",
        'config error: targets.x (from KEYWAY_TARGETS__X): expected table, got "{not json"',
      ].sort(),
    );
  });

  it("names the variable of a problem inside a JSON value and hides secrets", async () => {
    const error = await configError(
      load("", {
        KEYWAY_TARGETS__LINEAR: JSON.stringify({
          variant: "linear",
          secrets: { token: 5 },
          extra: 1,
        }),
      }),
    );
    expect(error.message.split("\n").sort()).toEqual(
      [
        "config error: targets.linear.extra (from KEYWAY_TARGETS__LINEAR): unknown key",
        "config error: targets.linear.secrets.token (from KEYWAY_TARGETS__LINEAR): expected string, got a number (value hidden)",
      ].sort(),
    );
  });

  it("refuses malformed variable names", async () => {
    const error = await configError(load("", { KEYWAY_API____PORT: "1" }));
    expect(error.message).toBe(
      "config error: (from KEYWAY_API____PORT): malformed name (empty key segment)",
    );
  });
});

describe("requireSetting", () => {
  it("returns a present setting and names an absent one", async () => {
    const config = await load("");
    expect(requireSetting(config.api.port, "api.port")).toBe(8080);
    expect(() => requireSetting(config.keys.master, "keys.master")).toThrow(
      "config error: keys.master: required but not set",
    );
  });
});
