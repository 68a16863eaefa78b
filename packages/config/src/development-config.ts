import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import {
  exportPrivateKeyPem,
  generateMasterKey,
  generateSigningKeyPair,
  generateToken,
  hashToken,
} from "@keyway/crypto";
import { parse } from "smol-toml";
import { ConfigError } from "./config-error";
import { stringifyConfig } from "./config-writer";
import { dialableUrl, type KeywayConfigInput } from "./schema";

export const DEVELOPMENT_GATEWAY_ID = "gateway-dev";

export interface DevelopmentConfigFiles {
  configPath: string;
  /** Holds the operator token (mode 0600); the config holds only its hash. */
  operatorTokenPath: string;
  /** Returned once so the caller can use it (e.g. to sync targets); print the path, not the token. */
  operatorToken: string;
  /** Where the config expects the gateway CA; the caller creates the certificate and key. */
  gatewayCaCertPath: string;
  gatewayCaKeyPath: string;
}

const HEADER = [
  "Keyway development configuration, written by `pnpm start` on its first run.",
  "It holds secrets (master key, signing keys): keep it private and out of version control.",
  "Relative paths are relative to this file's directory. Any key can be overridden with a",
  "KEYWAY_* environment variable (KEYWAY_API__PORT=9000); see packages/config/README.md.",
].join("\n");

/**
 * First-run configuration for a local all-in-one stack (SPEC §6.7): fresh master key, session
 * signing key, gateway identity (and the matching trusted entry), an operator token, the embedded
 * database under `<dir>/postgres`, and gateway CA paths under `<dir>`. Writes `<dir>/keyway.toml`
 * and `<dir>/operator-token`, both mode 0600, and never overwrites either: if one exists it throws
 * `ConfigError` with code `CONFIG_EXISTS`.
 */
export async function writeDevelopmentConfig(options: {
  dir: string;
}): Promise<DevelopmentConfigFiles> {
  const dir = resolve(options.dir);
  const configPath = join(dir, "keyway.toml");
  const operatorTokenPath = join(dir, "operator-token");
  const gatewayCaCertPath = join(dir, "gateway-ca.pem");
  const gatewayCaKeyPath = join(dir, "gateway-ca-key.pem");

  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const path of [configPath, operatorTokenPath]) {
    if (await exists(path)) {
      throw new ConfigError("CONFIG_EXISTS", [
        { key: "", message: `${path} already exists; not overwriting it` },
      ]);
    }
  }

  const sessionKey = await generateSigningKeyPair();
  const gatewayKey = await generateSigningKeyPair();
  const operatorToken = generateToken("operator");
  const config: KeywayConfigInput = {
    // Only inputs are written: `api.public_url`, `gateway.public_proxy_url` and
    // `gateway.control_plane_url` follow host and port (KEYWAY_API__PORT=9000 moves all of them).
    api: { host: "127.0.0.1", port: 8080 },
    database: { embedded: { data_dir: "postgres", port: 54329 } },
    keys: {
      master: { current: 1, keys: [{ version: 1, key: generateMasterKey() }] },
      session_signing: {
        current_kid: sessionKey.kid,
        keys: [
          { kid: sessionKey.kid, private_key: await exportPrivateKeyPem(sessionKey.privateJwk) },
        ],
      },
    },
    operator: { token_hashes: [hashToken(operatorToken)] },
    gateway: {
      host: "127.0.0.1",
      port: 8081,
      admin_port: 8082,
      ca_cert_path: "gateway-ca.pem",
      ca_key_path: "gateway-ca-key.pem",
      egress: { default_policy: "deny", allow_hosts: [], allow_private_networks: false },
      identity: {
        gateway_id: DEVELOPMENT_GATEWAY_ID,
        private_key: await exportPrivateKeyPem(gatewayKey.privateJwk),
      },
    },
    internal: { gateways: [{ id: DEVELOPMENT_GATEWAY_ID, public_jwk: gatewayKey.publicJwk }] },
    // On a developer's machine webhook subscribers are local endpoints (loopback addresses, which
    // a deployment refuses as private).
    webhooks: { allow_private_subscribers: true },
    log: { level: "info" },
  };

  // `wx`: fail rather than overwrite, even if a file appeared since the check above.
  await writeFile(configPath, stringifyConfig(config, { header: HEADER }), {
    mode: 0o600,
    flag: "wx",
  });
  await writeFile(operatorTokenPath, `${operatorToken}\n`, { mode: 0o600, flag: "wx" });
  return { configPath, operatorTokenPath, operatorToken, gatewayCaCertPath, gatewayCaKeyPath };
}

/**
 * Brings a development config written by an older `pnpm start` up to date, in place: those wrote
 * `api.public_url = "http://127.0.0.1:8080"`, the value it derives to anyway, which pinned it (and
 * the gateway's `control_plane_url`) when `KEYWAY_API__PORT` moved the API. The line is removed
 * only from a file that carries the development header and only while it equals what the file's
 * own `api.host`/`api.port` derive, so nothing changes for the file as written; a value chosen on
 * purpose is left alone. Returns the keys it removed (none when there was nothing to do).
 */
export async function upgradeDevelopmentConfig(configPath: string): Promise<string[]> {
  const text = await readFile(configPath, "utf8");
  if (!text.startsWith(`# ${HEADER.split("\n")[0]}`)) return [];
  let api: unknown;
  try {
    api = parse(text).api;
  } catch {
    return []; // loadConfig reports what is wrong with the file
  }
  if (typeof api !== "object" || api === null || !("public_url" in api)) return [];
  const host = "host" in api && typeof api.host === "string" ? api.host : "127.0.0.1";
  const port = "port" in api && typeof api.port === "number" ? api.port : 8080;
  const derived = dialableUrl(host, port);
  if (api.public_url !== derived) return [];
  // The line as the writer (smol-toml) put it, inside the [api] table.
  const lines = text.split("\n");
  const table = lines.indexOf("[api]");
  const next = lines.findIndex((line, index) => index > table && line.startsWith("["));
  const line = lines.indexOf(`public_url = "${derived}"`, table);
  if (table === -1 || line === -1 || (next !== -1 && line > next)) return [];
  lines.splice(line, 1);
  await writeFile(configPath, lines.join("\n"), { mode: 0o600 });
  return ["api.public_url"];
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
