/**
 * `pnpm start`: the whole platform on one machine with nothing but Node.js (SPEC §6.7).
 * First run: writes `.keyway/keyway.toml` (fresh keys, operator token, gateway identity) and a
 * development gateway CA. Every run: starts the embedded PostgreSQL under `.keyway/postgres`
 * (unless `database.url` is configured), migrates, syncs targets and starts the control plane
 * and, once it listens, the egress gateway in this process.
 * A second run reuses the same state. `KEYWAY_CONFIG` points at another config file.
 */
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import type { Server } from "node:http";
import { join, resolve } from "node:path";
import { type KeywayConfig, loadConfig, writeDevelopmentConfig } from "@keyway/config";
import { startControlPlane } from "@keyway/control-plane-api/server";
import { createGateway, gatewayDepsFromConfig } from "@keyway/data-plane-gateway";
import { EMBEDDED_DATABASE_NAME, startEmbeddedPostgres } from "@keyway/db";
import { createCertificateAuthority } from "@keyway/x509";

const stateDir = resolve(".keyway");
const configPath = process.env.KEYWAY_CONFIG ?? join(stateDir, "keyway.toml");

async function ensureDevelopmentState(): Promise<{ firstRun: boolean }> {
  if (existsSync(configPath)) return { firstRun: false };
  if (process.env.KEYWAY_CONFIG)
    throw new Error(`KEYWAY_CONFIG names ${configPath}, which does not exist`);
  const files = await writeDevelopmentConfig({ dir: stateDir });
  const ca = await createCertificateAuthority({ commonName: "Keyway development gateway CA" });
  await writeFile(files.gatewayCaCertPath, ca.certPem, { mode: 0o644, flag: "wx" });
  await writeFile(files.gatewayCaKeyPath, ca.keyPem, { mode: 0o600, flag: "wx" });
  return { firstRun: true };
}

function listen(server: Server, host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const address = server.address();
      const bound = address !== null && typeof address === "object" ? address.port : port;
      // A wildcard bind address is not something a browser or curl can dial.
      const dialHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
      resolve(`http://${dialHost.includes(":") ? `[${dialHost}]` : dialHost}:${bound}`);
    });
  });
}

/**
 * The egress gateway, in this process. It needs the control plane (session JWKS and the event
 * feed) before it is ready, so it starts after the API listens; start waits for readiness so the
 * printed URLs work at once.
 */
async function startGateway(
  config: KeywayConfig,
): Promise<{ adminUrl: string; close(): Promise<void> }> {
  const deps = await gatewayDepsFromConfig(config);
  const gateway = createGateway(deps);
  const close = async () => {
    await gateway.close();
    await deps.controlPlane.close();
  };
  try {
    await listen(gateway.proxyServer, config.gateway.host, config.gateway.port);
    const adminUrl = await listen(
      gateway.adminServer,
      config.gateway.admin_host,
      config.gateway.admin_port,
    );
    gateway.start();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      gateway.ready(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `the gateway could not reach the control plane at ${config.gateway.control_plane_url} within 30 s`,
              ),
            ),
          30_000,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    return { adminUrl, close };
  } catch (error) {
    await close();
    throw error;
  }
}

async function main(): Promise<void> {
  const { firstRun } = await ensureDevelopmentState();
  const config = await loadConfig({ path: configPath, env: process.env });

  let databaseUrl = config.database.url;
  let stopDatabase = async () => {};
  if (databaseUrl === undefined) {
    const dataDir = config.database.embedded.data_dir;
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    // Run as root, PostgreSQL runs as the `postgres` user, which must be able to enter the
    // state directory (but not list or read it).
    if (process.getuid?.() === 0) await chmod(stateDir, 0o711);
    const pg = await startEmbeddedPostgres({ dataDir, port: config.database.embedded.port });
    await pg.createDatabase(EMBEDDED_DATABASE_NAME, { ifNotExists: true });
    databaseUrl = pg.url(EMBEDDED_DATABASE_NAME);
    stopDatabase = () => pg.stop();
  }

  const api = await startControlPlane(config, { databaseUrl });
  const gateway = await startGateway(config);
  const operatorTokenPath = join(stateDir, "operator-token");
  const operatorToken = existsSync(operatorTokenPath)
    ? (await readFile(operatorTokenPath, "utf8")).trim()
    : undefined;

  const lines = [
    "",
    `Keyway is running${firstRun ? " (first run: development config written to .keyway/)" : ""}.`,
    "",
    `  control plane API   ${config.api.public_url}   (OpenAPI: ${config.api.public_url}/openapi.json)`,
    `  egress gateway      ${config.gateway.public_proxy_url}   (HTTP(S) proxy; sandboxes trust ${config.gateway.ca_cert_path})`,
    `  gateway admin       ${gateway.adminUrl}   (/healthz, /readyz, /metrics)`,
    `  database            ${config.database.url ? "configured database.url" : `embedded PostgreSQL in ${config.database.embedded.data_dir}`}`,
    `  config              ${configPath}`,
    `  operator token      ${operatorToken ? operatorTokenPath : "see operator.token_hashes in the config"}`,
    "",
    "Next steps (the README's walkthrough has the full sequence):",
    `  export KEYWAY=${config.api.public_url} OP=$(cat ${operatorTokenPath})`,
    `  curl -s -H "authorization: Bearer $OP" $KEYWAY/v1/operator/targets`,
    `  curl -s -H "authorization: Bearer $OP" -H content-type:application/json \\`,
    `       -d '{"name":"Acme"}' $KEYWAY/v1/operator/organizations`,
    "",
    "Press Ctrl+C to stop.",
  ];
  console.log(lines.join("\n"));

  const shutdown = async () => {
    // The gateway first, so it does not try to reconnect to a control plane going away.
    await gateway.close();
    await api.close();
    await stopDatabase();
    process.exit(0);
  };
  process.once("SIGINT", () => void shutdown());
  process.once("SIGTERM", () => void shutdown());
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
