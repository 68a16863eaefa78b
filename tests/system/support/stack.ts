import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { type KeywayConfig, loadConfig, writeDevelopmentConfig } from "@keyway/config";
import { type RunningControlPlane, startControlPlane } from "@keyway/control-plane-api/server";
import type { Clock } from "@keyway/integrations-core";
import {
  createTestCa,
  createTestDatabase,
  getFreePort,
  type RunningServer,
  startHttpServer,
  startHttpsServer,
  type TestCa,
  type TestDatabase,
} from "@keyway/test-harness";
import { ProxyAgent, request } from "undici";
import { bundlePath, SERVICE_NODE_FLAGS } from "../../../scripts/build";

/**
 * The platform as system tests run it: a development config written by the same helper
 * `pnpm start` uses, the real control plane in this process on its own PostgreSQL database, and
 * the real gateway as a separate process (`apps/data-plane-gateway/src/main.ts`) reading the same
 * config file. The gateway trusts `upstreamCa` (`gateway.upstream_ca_path`, on top of the system
 * roots), which issues the certificates of local HTTPS upstreams; clients trust the deployment's
 * gateway CA. Control-plane workers (`apps/control-plane-worker`, from its bundle) are started on
 * demand, on the same config and database.
 */
export interface Stack {
  dir: string;
  config: KeywayConfig;
  apiUrl: string;
  /** The gateway's proxy URL without credentials. */
  proxyUrl: string;
  adminUrl: string;
  operatorToken: string;
  /** The deployment's gateway CA certificate (PEM file): what sandboxes trust. */
  gatewayCaPath: string;
  /** Issues certificates for local HTTPS upstreams; the gateway trusts it. */
  upstreamCa: TestCa;
  /** Everything the gateway process wrote to stdout and stderr so far. */
  gatewayOutput(): string;
  /** Every log line the control plane wrote. */
  controlPlaneLogs: string[];
  /** Calls the public API as `token`; the body is parsed JSON (or undefined when empty). */
  api(token: string, method: string, path: string, body?: unknown): Promise<ApiResponse>;
  /** Like `api`, but throws unless the status is 2xx; returns the body. */
  apiOk(token: string, method: string, path: string, body?: unknown): Promise<unknown>;
  stopControlPlane(): Promise<void>;
  /** SIGKILL (only with `controlPlaneProcess`): a crash, no graceful shutdown. */
  killControlPlane(): Promise<void>;
  /**
   * Starts the control plane again on the same port and waits until it answers `/healthz`
   * (`waitForGateway: false`) or until the gateway's event feed is connected again (default).
   */
  restartControlPlane(options?: { waitForGateway?: boolean }): Promise<void>;
  /** The gateway process the stack started (`proxyUrl`, `adminUrl`). */
  gateway: GatewayProcess;
  /**
   * Resolves once the gateway's `/readyz` answers 200 with its event feed connected (a gateway
   * whose feed is down stays ready within the liveness outage grace).
   */
  waitUntilGatewayReady(): Promise<void>;
  /**
   * Another gateway process on the same config, on ports of its own, talking to the first control
   * plane or to `controlPlaneUrl` (another replica).
   */
  startGateway(options?: { controlPlaneUrl?: string }): Promise<GatewayProcess>;
  /** A control-plane worker process (its bundle) on the same config and database. */
  startWorker(): Promise<WorkerProcess>;
  /**
   * Another control-plane replica on the same database, on a port of its own (gateways keep
   * talking to the first). Closed with the stack.
   */
  startReplica(): Promise<{ url: string; close(): Promise<void> }>;
  /**
   * Another control-plane replica as its own process (the API bundle, as deployed) on the same
   * config and database, on a port of its own; it runs migrations and the target sync at start,
   * as every replica does. Stopped with the stack.
   */
  startReplicaProcess(): Promise<{ url: string; logs: string[]; stop(): Promise<void> }>;
  close(): Promise<void>;
}

export interface StackOptions {
  /** `KEYWAY_*` overrides for the control plane and every gateway. */
  env?: Record<string, string>;
  /** A database to use instead of a fresh one on the run's PostgreSQL (not dropped at close). */
  databaseUrl?: string;
  /**
   * Runs the control plane as its own process from its bundle (as deployed), so it can be
   * killed; `controlPlaneLogs` then holds the lines it writes. Default: in this process.
   */
  controlPlaneProcess?: boolean;
  /** The in-process control plane's (and its replicas') clock for its own decisions; tests move it. */
  clock?: Clock;
}

/** A gateway as its own process, running the bundle as deployed. */
export interface GatewayProcess {
  /** The proxy URL without credentials. */
  proxyUrl: string;
  adminUrl: string;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves once `/readyz` answers 200 with the event feed connected; throws if it exits first. */
  waitUntilReady(): Promise<void>;
  /** SIGTERM, then SIGKILL after 10 s. */
  stop(): Promise<void>;
  /** SIGKILL: a crash. */
  kill(): Promise<void>;
  /** Starts the process again on the same ports and waits until it is ready. */
  restart(): Promise<void>;
}

/** A control-plane worker as its own process, running the bundle as deployed. */
export interface WorkerProcess {
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** SIGKILL: the process dies at once, mid-job, as in a crash or an OOM kill. */
  kill(): Promise<void>;
  /** SIGTERM (running jobs get the shutdown timeout), then SIGKILL after 10 s. */
  stop(): Promise<void>;
}

export interface ApiResponse {
  status: number;
  body: unknown;
}

const repo = fileURLToPath(new URL("../../..", import.meta.url));
/** Built by the system project's global setup (`build-setup.ts`). */
const gatewayBundle = bundlePath("data-plane-gateway");
const apiBundle = bundlePath("control-plane-api");
const workerBundle = bundlePath("control-plane-worker");

export async function startStack(label: string, options: StackOptions = {}): Promise<Stack> {
  const dir = await mkdtemp(join(tmpdir(), `keyway-system-${label}-`));
  const files = await writeDevelopmentConfig({ dir: join(dir, ".keyway") });
  const gatewayCa = await createTestCa({ commonName: "Keyway system-test gateway CA" });
  await writeFile(files.gatewayCaCertPath, gatewayCa.certPem, { mode: 0o644 });
  await writeFile(files.gatewayCaKeyPath, gatewayCa.keyPem, { mode: 0o600 });
  const upstreamCa = await createTestCa({ commonName: "Keyway system-test upstream CA" });
  const upstreamCaPath = join(dir, "upstream-ca.pem");
  await writeFile(upstreamCaPath, upstreamCa.certPem);

  const apiPort = await getFreePort();
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const shared = {
    ...options.env,
    KEYWAY_GATEWAY__UPSTREAM_CA_PATH: upstreamCaPath,
    KEYWAY_API__PORT: String(apiPort),
    KEYWAY_API__PUBLIC_URL: apiUrl,
  };
  const [proxyPort, adminPort] = await Promise.all([getFreePort(), getFreePort()]);
  const overrides = {
    ...shared,
    KEYWAY_GATEWAY__PORT: String(proxyPort),
    KEYWAY_GATEWAY__ADMIN_PORT: String(adminPort),
  };
  const config = await loadConfig({ path: files.configPath, env: overrides });
  const database: Pick<TestDatabase, "url" | "drop"> =
    options.databaseUrl === undefined
      ? await createTestDatabase(`system_${label}`)
      : { url: options.databaseUrl, drop: async () => {} };

  const controlPlaneLogs: string[] = [];
  const logger = memoryLogger(controlPlaneLogs);
  const controlPlaneEnv = (port: number) => ({
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: dir,
    KEYWAY_CONFIG: files.configPath,
    KEYWAY_DATABASE__URL: database.url,
    // As `config` above: the gateway's ports make the proxy URL handed to sandboxes.
    ...overrides,
    KEYWAY_API__PORT: String(port),
    KEYWAY_API__PUBLIC_URL: `http://127.0.0.1:${port}`,
  });
  const controlPlane = options.controlPlaneProcess
    ? controlPlaneChild({
        env: controlPlaneEnv(apiPort),
        healthUrl: `${apiUrl}/healthz`,
        lines: controlPlaneLogs,
      })
    : controlPlaneInProcess(() =>
        startControlPlane(config, {
          databaseUrl: database.url,
          logger,
          ...(options.clock ? { clock: options.clock } : {}),
        }),
      );
  await controlPlane.start();
  const replicas: RunningControlPlane[] = [];
  const replicaProcesses: ControlPlaneRunner[] = [];
  const gateways: GatewayProcess[] = [];

  function spawnGateway(ports: {
    proxy: number;
    admin: number;
    controlPlaneUrl?: string;
  }): GatewayProcess {
    let output = "";
    const launch = (): ChildProcess => {
      const started = spawn(
        process.execPath,
        [...SERVICE_NODE_FLAGS["data-plane-gateway"], gatewayBundle],
        {
          cwd: repo,
          env: {
            PATH: process.env.PATH ?? "/usr/bin:/bin",
            HOME: dir,
            KEYWAY_CONFIG: files.configPath,
            ...shared,
            KEYWAY_GATEWAY__PORT: String(ports.proxy),
            KEYWAY_GATEWAY__ADMIN_PORT: String(ports.admin),
            ...(ports.controlPlaneUrl !== undefined
              ? { KEYWAY_GATEWAY__CONTROL_PLANE_URL: ports.controlPlaneUrl }
              : {}),
          },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      started.stdout?.on("data", (chunk: Buffer) => {
        output += chunk.toString("utf8");
      });
      started.stderr?.on("data", (chunk: Buffer) => {
        output += chunk.toString("utf8");
      });
      return started;
    };
    let child = launch();
    const adminUrl = `http://127.0.0.1:${ports.admin}`;
    const handle: GatewayProcess = {
      proxyUrl: `http://127.0.0.1:${ports.proxy}`,
      adminUrl,
      output: () => output,
      async waitUntilReady() {
        for (let i = 0; i < 600; i++) {
          if (child.exitCode !== null) {
            throw new Error(`the gateway exited with ${child.exitCode}:\n${output}`);
          }
          const ready = await fetch(`${adminUrl}/readyz`).then(
            async (response) => response.status === 200 && (await feedConnected(response)),
            () => false,
          );
          if (ready) return;
          await sleep(100);
        }
        throw new Error(`the gateway did not become ready:\n${output}`);
      },
      async stop() {
        await stopChild(child);
      },
      async kill() {
        await stopChild(child, "SIGKILL");
      },
      async restart() {
        await stopChild(child);
        child = launch();
        await handle.waitUntilReady();
      },
    };
    gateways.push(handle);
    return handle;
  }

  const workers: WorkerProcess[] = [];

  /** Resolves once the worker logs that it works its queues; throws if it exits first. */
  async function spawnWorker(): Promise<WorkerProcess> {
    let output = "";
    const metricsPort = await getFreePort();
    const child: ChildProcess = spawn(process.execPath, [workerBundle], {
      cwd: repo,
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: dir,
        KEYWAY_CONFIG: files.configPath,
        ...shared,
        KEYWAY_DATABASE__URL: database.url,
        KEYWAY_WORKER__METRICS_PORT: String(metricsPort),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const append = (chunk: Buffer) => {
      output += chunk.toString("utf8");
    };
    child.stdout?.on("data", append);
    child.stderr?.on("data", append);
    const exited = once(child, "exit");
    const ended = () => child.exitCode !== null || child.signalCode !== null;
    const handle: WorkerProcess = {
      output: () => output,
      async kill() {
        if (ended()) return;
        child.kill("SIGKILL");
        await exited;
      },
      async stop() {
        if (ended()) return;
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      },
    };
    workers.push(handle);
    for (let i = 0; i < 600 && !output.includes('"msg":"worker started"'); i++) {
      if (ended()) throw new Error(`the worker exited with ${child.exitCode}:\n${output}`);
      await sleep(100);
    }
    if (!output.includes('"msg":"worker started"')) {
      await handle.stop();
      throw new Error(`the worker did not start:\n${output}`);
    }
    return handle;
  }

  const gateway = spawnGateway({ proxy: proxyPort, admin: adminPort });
  const adminUrl = gateway.adminUrl;
  const waitUntilGatewayReady = () => gateway.waitUntilReady();

  const { api, apiOk } = apiClient(apiUrl);

  async function cleanUp(): Promise<void> {
    await Promise.all(workers.map((w) => w.stop()));
    await Promise.all(gateways.map((g) => g.stop()));
    await Promise.all(replicas.map((replica) => replica.close()));
    await Promise.all(replicaProcesses.map((replica) => replica.stop()));
    await controlPlane.stop();
    await database.drop();
    await rm(dir, { recursive: true, force: true });
  }

  try {
    await waitUntilGatewayReady();
  } catch (error) {
    await cleanUp();
    throw error;
  }

  return {
    dir,
    config,
    apiUrl,
    proxyUrl: `http://127.0.0.1:${proxyPort}`,
    adminUrl,
    operatorToken: files.operatorToken,
    gatewayCaPath: files.gatewayCaCertPath,
    upstreamCa,
    gatewayOutput: () => gateway.output(),
    controlPlaneLogs,
    api,
    apiOk,
    stopControlPlane: () => controlPlane.stop(),
    killControlPlane: () => controlPlane.kill(),
    async restartControlPlane(restart = {}) {
      await controlPlane.start();
      if (restart.waitForGateway ?? true) await waitUntilGatewayReady();
    },
    gateway,
    waitUntilGatewayReady,
    async startGateway(gatewayOptions = {}) {
      const [proxy, admin] = await Promise.all([getFreePort(), getFreePort()]);
      const started = spawnGateway({ proxy, admin, ...gatewayOptions });
      await started.waitUntilReady();
      return started;
    },
    startWorker: spawnWorker,
    async startReplica() {
      const port = await getFreePort();
      const replica = await startControlPlane(
        { ...config, api: { ...config.api, port, public_url: `http://127.0.0.1:${port}` } },
        { databaseUrl: database.url, logger, ...(options.clock ? { clock: options.clock } : {}) },
      );
      replicas.push(replica);
      return { url: replica.url, close: () => replica.close() };
    },
    async startReplicaProcess() {
      const port = await getFreePort();
      const url = `http://127.0.0.1:${port}`;
      const logs: string[] = [];
      const replica = controlPlaneChild({
        env: controlPlaneEnv(port),
        healthUrl: `${url}/healthz`,
        lines: logs,
      });
      replicaProcesses.push(replica);
      await replica.start();
      return { url, logs, stop: () => replica.stop() };
    },
    close: cleanUp,
  };
}

/** `api` and `apiOk` of a `Stack`, against the control plane (or replica) at `baseUrl`. */
export function apiClient(baseUrl: string): Pick<Stack, "api" | "apiOk"> {
  async function api(
    token: string,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<ApiResponse> {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    return { status: response.status, body: text === "" ? undefined : JSON.parse(text) };
  }
  return {
    api,
    async apiOk(token, method, path, body) {
      const response = await api(token, method, path, body);
      if (response.status < 200 || response.status > 299) {
        throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(response.body)}`);
      }
      return response.body;
    },
  };
}

/** Whether a gateway's `/readyz` body says its event feed is connected. */
async function feedConnected(response: Response): Promise<boolean> {
  const body: unknown = await response.json();
  if (typeof body !== "object" || body === null || !("checks" in body)) return false;
  const checks = body.checks;
  return (
    typeof checks === "object" && checks !== null && "events" in checks && checks.events === true
  );
}

/** Sends `signal` (SIGTERM, then SIGKILL after 10 s) unless the process has exited; waits for it. */
async function stopChild(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

/** The control plane, started and stopped: in this process, or as a child running its bundle. */
interface ControlPlaneRunner {
  /** Starts it unless it runs; resolves once it serves. */
  start(): Promise<void>;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

function controlPlaneInProcess(begin: () => Promise<RunningControlPlane>): ControlPlaneRunner {
  let running: RunningControlPlane | undefined;
  return {
    async start() {
      running ??= await begin();
    },
    async stop() {
      await running?.close();
      running = undefined;
    },
    kill: () => Promise.reject(new Error("an in-process control plane cannot be killed")),
  };
}

function controlPlaneChild(options: {
  env: NodeJS.ProcessEnv;
  healthUrl: string;
  lines: string[];
}): ControlPlaneRunner {
  let child: ChildProcess | undefined;
  let output = "";
  const collect = (chunk: Buffer) => {
    output += chunk.toString("utf8");
    const end = output.lastIndexOf("\n");
    if (end < 0) return;
    options.lines.push(...output.slice(0, end).split("\n"));
    output = output.slice(end + 1);
  };
  return {
    async start() {
      if (child !== undefined && child.exitCode === null && child.signalCode === null) return;
      const started = spawn(
        process.execPath,
        [...SERVICE_NODE_FLAGS["control-plane-api"], apiBundle],
        {
          cwd: repo,
          env: options.env,
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      child = started;
      started.stdout?.on("data", collect);
      started.stderr?.on("data", collect);
      for (let i = 0; i < 600; i++) {
        if (started.exitCode !== null) {
          throw new Error(`the control plane exited with ${started.exitCode}:\n${output}`);
        }
        const healthy = await fetch(options.healthUrl).then(
          (response) => response.ok,
          () => false,
        );
        if (healthy) return;
        await sleep(100);
      }
      throw new Error("the control plane did not start");
    },
    stop: async () => {
      if (child) await stopChild(child);
    },
    kill: async () => {
      if (child) await stopChild(child, "SIGKILL");
    },
  };
}

type ControlPlaneLogger = NonNullable<Parameters<typeof startControlPlane>[1]["logger"]>;

/** The control plane's log lines, kept for secret scans instead of cluttering the test output. */
function memoryLogger(lines: string[]): ControlPlaneLogger {
  const write = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
    lines.push(JSON.stringify({ level, msg, ...fields }));
  };
  return { debug: write("debug"), info: write("info"), warn: write("warn"), error: write("error") };
}

/** The string at a dotted path of a JSON value; throws when it is missing or not a string. */
export function stringAt(value: unknown, path: string): string {
  let current: unknown = value;
  for (const key of path.split(".")) {
    current =
      typeof current === "object" && current !== null && Object.hasOwn(current, key)
        ? Object.getOwnPropertyDescriptor(current, key)?.value
        : undefined;
  }
  if (typeof current !== "string") {
    throw new Error(`expected a string at ${path} in ${JSON.stringify(value)}`);
  }
  return current;
}

// ----- the organization side ------------------------------------------------------------------

export interface StartedSession {
  id: string;
  token: string;
  /** `http://session:<token>@host:port`, as the sandbox's HTTP(S)_PROXY. */
  proxyUrl: string;
  planDigest: string;
  profileVersionId: string;
}

/** A new organization and its first admin token. */
export async function createOrganization(stack: Stack, name: string): Promise<string> {
  const created = await stack.apiOk(stack.operatorToken, "POST", "/v1/operator/organizations", {
    name,
  });
  return stringAt(created, "adminToken.token");
}

/** An operator-created `http-api` target (bearer auth unless `auth` says otherwise). */
export async function createHttpApiTarget(
  stack: Stack,
  targetKey: string,
  config: { baseUrl: string; auth?: Record<string, unknown> },
): Promise<void> {
  await stack.apiOk(stack.operatorToken, "POST", "/v1/operator/targets", {
    targetKey,
    variantId: "http-api",
    config,
  });
}

/** An API-key connection; returns its id. */
export async function createApiKeyConnection(
  stack: Stack,
  orgToken: string,
  input: { targetKey: string; methodId?: string; secrets: Record<string, string> },
): Promise<string> {
  const connection = await stack.apiOk(orgToken, "POST", "/v1/integration/connections", {
    targetKey: input.targetKey,
    methodId: input.methodId ?? "api-key",
    displayName: input.targetKey,
    secrets: input.secrets,
  });
  return stringAt(connection, "id");
}

/** A profile with one version holding `bindings`, and a session for it. */
export async function startSessionWith(
  stack: Stack,
  orgToken: string,
  bindings: { connectionId: string; kind: "agent" | "git" | "connector"; config?: unknown }[],
): Promise<StartedSession & { profileId: string }> {
  const profile = await stack.apiOk(orgToken, "POST", "/v1/sandbox-profiles", {
    name: `profile-${Date.now()}`,
  });
  const profileId = stringAt(profile, "id");
  await stack.apiOk(orgToken, "POST", `/v1/sandbox-profiles/${profileId}/versions`, {
    bindings: bindings.map((b) => ({ ...b, config: b.config ?? {} })),
  });
  const session = await startSession(stack, orgToken, profileId);
  return { ...session, profileId };
}

export async function startSession(
  stack: Stack,
  orgToken: string,
  profileId: string,
): Promise<StartedSession> {
  const session = await stack.apiOk(orgToken, "POST", "/v1/sandbox-sessions", { profileId });
  return {
    id: stringAt(session, "id"),
    token: stringAt(session, "token"),
    proxyUrl: stringAt(session, "proxyEnv.HTTPS_PROXY"),
    planDigest: stringAt(session, "planDigest"),
    profileVersionId: stringAt(session, "profileVersionId"),
  };
}

// ----- clients --------------------------------------------------------------------------------

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a program asynchronously (the servers it talks to live in this process) with a clean
 * environment: no proxy or CA variables leak in from the test runner, only those in `env`.
 */
export function run(
  file: string,
  args: readonly string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      {
        encoding: "latin1",
        maxBuffer: 64 * 1024 * 1024,
        timeout: 60_000,
        ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...options.env },
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
        resolve({ exitCode: code, stdout, stderr });
      },
    );
  });
}

export interface CurlResult extends CommandResult {
  status: number;
  headers: string;
  body: string;
}

/** curl with `-i`; status and headers are those of the final response (not the CONNECT's). */
export async function curl(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<CurlResult> {
  const result = await run(
    "curl",
    ["-sS", "-i", "--suppress-connect-headers", "--max-time", "20", ...args],
    { env },
  );
  const split = result.stdout.indexOf("\r\n\r\n");
  const headers = split < 0 ? result.stdout : result.stdout.slice(0, split);
  return {
    ...result,
    status: Number(/^HTTP\/[0-9.]+ ([0-9]{3})/.exec(headers)?.[1] ?? 0),
    headers,
    body: split < 0 ? "" : result.stdout.slice(split + 4),
  };
}

/**
 * One plain-HTTP request through the gateway as a sandbox sends it: "200", "<status> <code>",
 * or the error undici's ProxyAgent turns a 407 into ("... 407 ..."), or a connection error.
 */
export async function sendThroughGateway(proxy: string, url: string): Promise<string> {
  const agent = new ProxyAgent({ uri: proxy, proxyTunnel: false });
  try {
    const response = await request(url, {
      dispatcher: agent,
      headers: { authorization: "Bearer placeholder" },
    });
    const body = await response.body.text();
    if (response.statusCode === 200) return "200";
    const code = /"code":"([a-z_]+)"/.exec(body)?.[1] ?? "";
    return `${response.statusCode} ${code}`.trim();
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    await agent.close();
  }
}

/** Polls until `sendThroughGateway` answers something other than 200; returns that answer and the time taken. */
export async function untilRefused(proxy: string, url: string, limitMs: number) {
  const started = performance.now();
  let answer = await sendThroughGateway(proxy, url);
  while (answer === "200" && performance.now() - started < limitMs) {
    await sleep(50);
    answer = await sendThroughGateway(proxy, url);
  }
  return { answer, elapsedMs: performance.now() - started };
}

/** `DELETE /v1/sandbox-sessions/{id}` on the API at `baseUrl`; the status. */
export async function revokeSession(
  baseUrl: string,
  orgToken: string,
  sessionId: string,
): Promise<number> {
  const response = await fetch(`${baseUrl}/v1/sandbox-sessions/${sessionId}`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${orgToken}` },
  });
  await response.body?.cancel();
  return response.status;
}

/** The JSON error code of a gateway or API error body, if it is one. */
export function errorCode(body: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed !== "object" || parsed === null || !("error" in parsed)) return undefined;
    const error = parsed.error;
    if (typeof error !== "object" || error === null || !("code" in error)) return undefined;
    return typeof error.code === "string" ? error.code : undefined;
  } catch {
    return undefined;
  }
}

// ----- upstreams ------------------------------------------------------------------------------

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

export interface RecordingUpstream extends RunningServer {
  received: ReceivedRequest[];
  last(): ReceivedRequest;
}

/**
 * A provider stand-in on loopback (HTTPS with a certificate from `ca`, else plain HTTP) that
 * records each request and answers without echoing anything it received, so a test can check
 * both what reached the provider and what the sandbox saw.
 */
export async function startRecordingUpstream(ca?: TestCa): Promise<RecordingUpstream> {
  const received: ReceivedRequest[] = [];
  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk);
    received.push({
      method: req.method ?? "",
      url: req.url ?? "",
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      body: Buffer.concat(chunks).toString("utf8"),
    });
    const body = JSON.stringify({ ok: true, n: received.length });
    res.writeHead(200, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
    });
    res.end(body);
  };
  const server = ca ? await startHttpsServer(handler, { ca }) : await startHttpServer(handler);
  return {
    ...server,
    received,
    last() {
      const last = received.at(-1);
      if (last === undefined) throw new Error("the upstream received nothing");
      return last;
    },
  };
}
