/**
 * `pnpm start`: the whole platform on one machine with nothing but Node.js (SPEC §6.7).
 * First run: writes `.keyway/keyway.toml` (fresh keys, operator token, gateway identity) and a
 * development gateway CA. Every run: bundles the services (`scripts/build.ts`), starts the
 * embedded PostgreSQL under `.keyway/postgres` (unless `database.url` is configured), then runs
 * the control plane and, once it answers, the egress gateway, each as its own `node` process from
 * its bundle, as the image runs them. The API migrates and syncs targets on start.
 * A second run reuses the same state. `KEYWAY_CONFIG` points at another config file.
 * Ctrl+C (SIGINT) or SIGTERM stops the gateway, then the API, then the database.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { dialableUrl, type KeywayConfig, loadConfig, writeDevelopmentConfig } from "@keyway/config";
import { EMBEDDED_DATABASE_NAME, startEmbeddedPostgres } from "@keyway/db";
import { createCertificateAuthority } from "@keyway/x509";
import { buildService, type Service } from "./build";

const stateDir = resolve(".keyway");
const configPath = resolve(process.env.KEYWAY_CONFIG ?? join(stateDir, "keyway.toml"));

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

function requireFixedPort(key: string, port: number): void {
  // The children bind the configured ports; with 0 this script could not find them.
  if (port === 0) throw new Error(`pnpm start needs a fixed ${key} (it is 0)`);
}

interface RunningService {
  readonly name: Service;
  readonly child: ChildProcess;
  /** Resolves with the exit code (or signal) once the process is gone. */
  readonly exited: Promise<string>;
  stop(): Promise<void>;
}

/** Runs a service's bundle with plain `node`; its log lines go to this terminal. */
function runService(name: Service, file: string, env: NodeJS.ProcessEnv): RunningService {
  const child = spawn(process.execPath, [file], { env, stdio: ["ignore", "inherit", "inherit"] });
  const exited = new Promise<string>((resolve) => {
    child.once("exit", (code, signal) => resolve(signal ?? String(code)));
  });
  return {
    name,
    child,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const forced = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(forced);
    },
  };
}

/** Polls `url` until it answers 200; fails at once if the service exits first. */
async function waitUntilOk(service: RunningService, url: string, what: string): Promise<void> {
  let exitedWith: string | undefined;
  void service.exited.then((how) => {
    exitedWith = how;
  });
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (exitedWith !== undefined) throw new Error(`${service.name} exited (${exitedWith})`);
    const ok = await fetch(url).then(
      (response) => response.status === 200,
      () => false,
    );
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`${what} (${url}) was not ready within 60 s`);
}

async function startDatabase(
  config: KeywayConfig,
): Promise<{ url: string; stop(): Promise<void> }> {
  if (config.database.url !== undefined) return { url: config.database.url, stop: async () => {} };
  const dataDir = config.database.embedded.data_dir;
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  // Run as root, PostgreSQL runs as the `postgres` user, which must be able to enter the state
  // directory (but not list or read it).
  if (process.getuid?.() === 0) await chmod(stateDir, 0o711);
  const pg = await startEmbeddedPostgres({ dataDir, port: config.database.embedded.port });
  await pg.createDatabase(EMBEDDED_DATABASE_NAME, { ifNotExists: true });
  return { url: pg.url(EMBEDDED_DATABASE_NAME), stop: () => pg.stop() };
}

async function main(): Promise<void> {
  const { firstRun } = await ensureDevelopmentState();
  const config = await loadConfig({ path: configPath, env: process.env });
  requireFixedPort("api.port", config.api.port);
  requireFixedPort("gateway.admin_port", config.gateway.admin_port);
  const [apiBundle, gatewayBundle] = await Promise.all([
    buildService("control-plane-api"),
    buildService("data-plane-gateway"),
  ]);

  const database = await startDatabase(config);
  const services: RunningService[] = [];
  let stopping = false;
  // Stops what runs, newest first: the gateway before the API it depends on, the database last.
  const shutdown = async (code: number) => {
    if (stopping) return;
    stopping = true;
    for (const service of [...services].reverse()) await service.stop();
    await database.stop();
    process.exit(code);
  };
  // `on`, not `once`: Ctrl+C reaches this process twice (from the terminal and relayed by tsx),
  // and a second SIGINT without a handler would kill it before the database is stopped.
  process.on("SIGINT", () => void shutdown(0));
  process.on("SIGTERM", () => void shutdown(0));
  // If this process dies some other way, the services must not outlive it.
  process.once("exit", () => {
    for (const { child } of services) if (child.exitCode === null) child.kill("SIGTERM");
  });

  const env = { ...process.env, KEYWAY_CONFIG: configPath, KEYWAY_DATABASE__URL: database.url };
  const adminUrl = dialableUrl(config.gateway.admin_host, config.gateway.admin_port);
  try {
    const api = runService("control-plane-api", apiBundle, env);
    services.push(api);
    await waitUntilOk(api, `${dialableUrl(config.api.host, config.api.port)}/healthz`, "the API");
    const gateway = runService("data-plane-gateway", gatewayBundle, env);
    services.push(gateway);
    await waitUntilOk(gateway, `${adminUrl}/readyz`, "the gateway");
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    await shutdown(1);
    return;
  }
  // A service that stops on its own takes the platform down with it, loudly.
  for (const service of services) {
    void service.exited.then((how) => {
      if (stopping) return;
      console.error(`${service.name} exited (${how}); stopping Keyway`);
      void shutdown(1);
    });
  }

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
    `  gateway admin       ${adminUrl}   (/healthz, /readyz, /metrics)`,
    `  database            ${config.database.url ? "configured database.url" : `embedded PostgreSQL in ${config.database.embedded.data_dir}`}`,
    `  config              ${configPath}`,
    `  operator token      ${operatorToken ? operatorTokenPath : "see operator.token_hashes in the config"}`,
    `  processes           API pid ${services[0]?.child.pid}, gateway pid ${services[1]?.child.pid} (node apps/<service>/dist/main.mjs)`,
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
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
