/**
 * `pnpm start`: the whole platform on one machine with nothing but Node.js (SPEC §6.7).
 * First run: writes `.keyway/keyway.toml` (fresh keys, operator token, gateway identity) and a
 * development gateway CA. Every run: takes the folder's lock (one start per folder), checks that
 * the ports it needs are free, bundles the services (`scripts/build.ts`), starts the embedded
 * PostgreSQL under `.keyway/postgres` (unless `database.url` is configured), then the control
 * plane and, once it is up, the worker and the egress gateway, each as its own `node` process
 * from its bundle, as the image runs them. The API migrates and syncs targets on start.
 * It supervises what it started: a process that ends on its own is restarted with backoff and the
 * restart announced (`scripts/start/supervisor.ts`); one that keeps crashing stops Keyway.
 * Ctrl+C (SIGINT) or SIGTERM stops the gateway, the worker, the API, then the database, and ends with
 * "Keyway stopped." (exit code 0). A second run reuses the same state. `KEYWAY_CONFIG` points at
 * another config file. What each failure looks like: docs/operations.md.
 */
import { existsSync } from "node:fs";
import { chmod, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join, relative, resolve } from "node:path";
import {
  dialableUrl,
  type KeywayConfig,
  listenOn,
  loadConfig,
  PortInUseError,
  upgradeDevelopmentConfig,
  writeDevelopmentConfig,
} from "@keyway/config";
import { embeddedSocketDir } from "@keyway/db";
import { createCertificateAuthority } from "@keyway/x509";
import { buildService } from "./build";
import { embeddedDatabase } from "./start/embedded-database";
import { AlreadyRunningError, acquireInstanceLock } from "./start/instance-lock";
import { nodeService } from "./start/node-service";
import { Supervisor } from "./start/supervisor";

const projectDir = process.cwd();
const stateDir = resolve(".keyway");
const configPath = resolve(process.env.KEYWAY_CONFIG ?? join(stateDir, "keyway.toml"));

async function ensureDevelopmentState(): Promise<{ firstRun: boolean }> {
  if (existsSync(configPath)) {
    for (const key of await upgradeDevelopmentConfig(configPath)) {
      console.log(
        `${relative(projectDir, configPath)}: removed ${key}, written by an older pnpm start; it now follows the port`,
      );
    }
    return { firstRun: false };
  }
  if (process.env.KEYWAY_CONFIG)
    throw new Error(`KEYWAY_CONFIG names ${configPath}, which does not exist`);
  const files = await writeDevelopmentConfig({ dir: stateDir });
  const ca = await createCertificateAuthority({ commonName: "Keyway development gateway CA" });
  await writeFile(files.gatewayCaCertPath, ca.certPem, { mode: 0o644, flag: "wx" });
  await writeFile(files.gatewayCaKeyPath, ca.keyPem, { mode: 0o600, flag: "wx" });
  return { firstRun: true };
}

interface PortSetting {
  key: string;
  host: string;
  port: number;
}

function portSettings(config: KeywayConfig): PortSetting[] {
  const ports: PortSetting[] = [
    { key: "api.port", host: config.api.host, port: config.api.port },
    { key: "gateway.port", host: config.gateway.host, port: config.gateway.port },
    {
      key: "gateway.admin_port",
      host: config.gateway.admin_host,
      port: config.gateway.admin_port,
    },
    {
      key: "worker.metrics_port",
      host: config.worker.metrics_host,
      port: config.worker.metrics_port,
    },
  ];
  if (config.database.url === undefined) {
    const { port } = config.database.embedded;
    ports.push({ key: "database.embedded.port", host: "127.0.0.1", port });
  }
  return ports;
}

/**
 * Fails before anything starts when a port is taken, naming the port and its setting. The
 * services check again when they bind (something may take a port meanwhile), and this script
 * trusts only their own word that they are up.
 */
async function ensurePortsFree(ports: readonly PortSetting[]): Promise<void> {
  for (const { key, host, port } of ports) {
    // The children bind the configured ports; with 0 this script could not find them.
    if (port === 0) throw new Error(`pnpm start needs a fixed ${key} (it is 0)`);
    const probe = createServer();
    await listenOn(probe, host, port, key);
    await new Promise((done) => probe.close(done));
  }
}

function describeStartFailure(error: unknown): string {
  if (error instanceof PortInUseError) {
    const envVar = `KEYWAY_${error.key.split(".").join("__").toUpperCase()}`;
    return `${error.message}: stop what is using it, or choose another port with ${envVar}`;
  }
  if (!(error instanceof Error)) return String(error);
  // A PostgreSQL that did not start: its own output, which says why, is in the cause.
  const detail = error.cause instanceof Error ? error.cause.message.split("\n").slice(1) : [];
  return [error.message, ...detail.filter((line) => line.trim() !== "")].join("\n");
}

interface Started {
  config: KeywayConfig;
  firstRun: boolean;
  pids: { database?: number; api?: number; worker?: number; gateway?: number };
}

/** Everything up to a running platform; throws on the first failure. */
async function startKeyway(supervisor: Supervisor): Promise<Started> {
  await acquireInstanceLock(stateDir, projectDir);
  const { firstRun } = await ensureDevelopmentState();
  const config = await loadConfig({ path: configPath, env: process.env });
  await ensurePortsFree(portSettings(config));
  const [apiBundle, workerBundle, gatewayBundle] = await Promise.all([
    buildService("control-plane-api"),
    buildService("control-plane-worker"),
    buildService("data-plane-gateway"),
  ]);

  const pids: Started["pids"] = {};
  let databaseUrl = config.database.url;
  if (databaseUrl === undefined) {
    const dataDir = config.database.embedded.data_dir;
    // Run as root, PostgreSQL runs as the `postgres` user, which must be able to enter the state
    // directory (but not list or read it).
    if (process.getuid?.() === 0) await chmod(stateDir, 0o711);
    const database = embeddedDatabase({ dataDir, port: config.database.embedded.port });
    pids.database = (await supervisor.start(database.process)).pid;
    databaseUrl = database.url;
  }
  const env = { ...process.env, KEYWAY_CONFIG: configPath, KEYWAY_DATABASE__URL: databaseUrl };
  const api = nodeService({
    name: "control-plane-api",
    bundle: apiBundle,
    env,
    ...(config.database.url === undefined ? { after: ["PostgreSQL"] } : {}),
  });
  pids.api = (await supervisor.start(api)).pid;
  // After the API: it has migrated the schema the worker's jobs read.
  const worker = nodeService({
    name: "control-plane-worker",
    bundle: workerBundle,
    env,
    after: ["control-plane-api"],
  });
  pids.worker = (await supervisor.start(worker)).pid;
  const gateway = nodeService({
    name: "data-plane-gateway",
    bundle: gatewayBundle,
    env,
    readyUrl: `${adminUrl(config)}/readyz`,
    after: ["control-plane-api"],
  });
  pids.gateway = (await supervisor.start(gateway)).pid;
  return { config, firstRun, pids };
}

/** Where the embedded server is, for `psql`: its TCP port and the socket the services use. */
function embeddedDatabaseLine(config: KeywayConfig): string {
  const { data_dir, port } = config.database.embedded;
  const socketDir = embeddedSocketDir(port);
  const socket = socketDir === undefined ? "" : `, socket in ${socketDir}`;
  return `embedded PostgreSQL in ${data_dir} (127.0.0.1:${port}${socket})`;
}

function adminUrl(config: KeywayConfig): string {
  return dialableUrl(config.gateway.admin_host, config.gateway.admin_port);
}

async function banner({ config, firstRun, pids }: Started): Promise<string> {
  const operatorTokenPath = join(stateDir, "operator-token");
  const operatorToken = existsSync(operatorTokenPath)
    ? (await readFile(operatorTokenPath, "utf8")).trim()
    : undefined;
  const processes = [
    `API pid ${pids.api}, worker pid ${pids.worker}, gateway pid ${pids.gateway}`,
    ...(pids.database === undefined ? [] : [`PostgreSQL pid ${pids.database}`]),
  ].join(", ");
  return [
    "",
    `Keyway is running${firstRun ? " (first run: development config written to .keyway/)" : ""}.`,
    "",
    `  control plane API   ${config.api.public_url}   (OpenAPI: ${config.api.public_url}/openapi.json)`,
    `  egress gateway      ${config.gateway.public_proxy_url}   (HTTP(S) proxy; sandboxes trust ${config.gateway.ca_cert_path})`,
    `  gateway admin       ${adminUrl(config)}   (/healthz, /readyz, /metrics)`,
    `  database            ${config.database.url ? "configured database.url" : embeddedDatabaseLine(config)}`,
    `  config              ${configPath}`,
    `  operator token      ${operatorToken ? operatorTokenPath : "see operator.token_hashes in the config"}`,
    `  processes           ${processes} (restarted if they crash)`,
    "",
    "Next steps (the README's walkthrough has the full sequence):",
    `  export KEYWAY=${config.api.public_url} OP=$(cat ${operatorTokenPath})`,
    `  curl -s -H "authorization: Bearer $OP" $KEYWAY/v1/operator/targets`,
    `  curl -s -H "authorization: Bearer $OP" -H content-type:application/json \\`,
    `       -d '{"name":"Acme"}' $KEYWAY/v1/operator/organizations`,
    "",
    "Press Ctrl+C to stop.",
  ].join("\n");
}

async function main(): Promise<void> {
  const supervisor = new Supervisor({
    announce: (line) => console.log(line),
    giveUp: (reason) => {
      console.error(reason);
      void stop(1);
    },
  });
  const stop = async (exitCode: number, farewell: string | null = "Keyway stopped.") => {
    if (supervisor.stopping) return;
    await supervisor.stop();
    if (farewell !== null) console.log(farewell);
    // Exit code 0 after Ctrl+C: pnpm reports any other as a failed command (ELIFECYCLE).
    process.exit(exitCode);
  };
  // `on`, not `once`: Ctrl+C reaches this process twice (from the terminal and relayed by pnpm),
  // and a second SIGINT without a handler would kill it before the database is stopped.
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));
  // A closed terminal (SIGHUP) stops Keyway too: PostgreSQL would otherwise outlive it. Writing to
  // that terminal then fails; the stop must go on regardless.
  process.on("SIGHUP", () => void stop(0));
  for (const stream of [process.stdout, process.stderr]) stream.on("error", () => {});

  try {
    const started = await startKeyway(supervisor);
    if (!supervisor.stopping) console.log(await banner(started));
  } catch (error) {
    // Ctrl+C while starting also interrupts the bundler and PostgreSQL, failing the start:
    // `stop` is under way and says so.
    if (supervisor.stopping) return;
    console.error(
      error instanceof AlreadyRunningError
        ? error.message
        : `Keyway did not start: ${describeStartFailure(error)}`,
    );
    await stop(1, null);
  }
}

await main();
