/**
 * Webhook benchmark (SPEC §11): "webhook ingest: ≥ 1,000 verified events/s persisted and enqueued,
 * p99 acknowledgement < 50 ms" and "webhook delivery: ≥ 500 deliveries/s to a loopback subscriber
 * at concurrency 16", with the ingest-to-delivery latency.
 *
 *   pnpm bench:webhooks [--json FILE] [--duration S] [--warmup S] [--concurrency N]
 *                       [--worker-concurrency N] [--installations N] [--latency-rate N]
 *                       [--latency-duration S] [--phases ceiling,ingest,delivery,latency]
 *                       [--no-fsync] [--through-hono] [--profile DIR] [--log DIR]
 *                       [--pg-statements] [--trace DIR] [--api-flags "FLAGS"]
 *                       [--alloc DIR [--alloc-sites]]
 *
 * Processes (each its own event loop):
 * - PostgreSQL: embedded, in a temporary directory, durable (fsync and synchronous commit on, as
 *   `pnpm start` runs it; `--no-fsync` turns both off to show what the commits cost);
 * - control-plane API: the deployed bundle (`apps/control-plane-api/dist/main.mjs`, built at the
 *   start of the run, run with its `SERVICE_NODE_FLAGS`) from a development config, every module
 *   on, its JSON access log written to `--log` (default /dev/null);
 * - worker: the deployed bundle of `apps/control-plane-worker` on the same config, with
 *   `worker.concurrency` = `--worker-concurrency` (16);
 * - sender: `webhooks-sender.ts`, GitHub-shaped events each signed as GitHub signs (HMAC-SHA256
 *   of its own body, its own `X-GitHub-Delivery`), over `--concurrency` (32) keep-alive
 *   connections;
 * - this process: seeds the database, serves the loopback subscriber (node:http, 204) and the
 *   trivial server the sender's own ceiling is measured against, and checks the results.
 *
 * Phases, in order:
 * 1. `ceiling`: the sender against a trivial server answering 202 as the API does — the most the
 *    sender can offer on this machine, so a slower ingest figure is the API's, not the sender's;
 * 2. `ingest`: the sender against `POST /p/integration/webhooks/:targetKey` (worker stopped):
 *    events/s, acknowledgement latency, errors; then the database must hold every acknowledged
 *    event with its `webhook-process` job and its `webhook.received` audit entry, and the audit
 *    chain must verify;
 * 3. `delivery`: the worker is started on the events the ingest phase queued (one subscription
 *    per installation's organization, matching every event): each event is fanned out and
 *    delivered; deliveries/s from the first delivery to the last;
 * 4. `latency`: with the worker running, events at `--latency-rate` per second: the time from the
 *    sender's POST to the subscriber receiving the delivery.
 *
 * CPU per event of the API, the worker and PostgreSQL (all its processes) comes from /proc: a
 * figure less sensitive to the machine's other load than throughput. The sender measures its own,
 * from its first send to its last answer (not its start-up). `--profile DIR` runs the API
 * and the worker under `node --cpu-prof` and prints where their CPU time went.
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  createWriteStream,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
} from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import os, { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadConfig, writeDevelopmentConfig } from "@keyway/config";
import { verifyWithReferenceLibrary } from "@keyway/control-plane-worker/testing/webhook-subscriber";
import { createKeyRing } from "@keyway/crypto";
import { createDatabase, type DatabaseHandle, runMigrations } from "@keyway/db";
import { createCatalogueRegistry } from "@keyway/integrations-definitions";
import { createTestCa, getFreePort, startEmbeddedPostgres } from "@keyway/test-harness";
import { createAuditSealer } from "../../apps/control-plane-api/src/audit/sealer";
import { verifyAuditChain } from "../../apps/control-plane-api/src/audit/service";
import {
  seedConnection,
  seedOrganization,
  seedTarget,
} from "../../apps/control-plane-api/src/internal/fixtures";
import { createLogger } from "../../apps/control-plane-api/src/logger";
import { createSubscription } from "../../apps/control-plane-api/src/webhooks/subscriptions";
import { JOB_SCHEMA, webhookProcessQueue } from "../../packages/jobs/src/index";
import { buildService, SERVICE_NODE_FLAGS } from "../build";
import { jsonOutputPath, machineFacts, percentile, writeJson } from "./bench-lib";
import { type ProfileSummary, printProfileSummary, summarizeCpuProfile } from "./cpuprofile-top";
import {
  childPids,
  cpuMs,
  isReady,
  repoRoot,
  type Spawned,
  spawnNode,
  stop,
  waitFor,
} from "./processes";
import { epochMs, type SenderResult, type SenderSpec } from "./webhooks-sender";
import { printTrace, printWalStats, TRACE_POSTGRES_SETTINGS, walStats } from "./webhooks-trace";

const HELP = `pnpm bench:webhooks — webhook ingest and delivery (SPEC §11)

  --json FILE               write the figures as JSON
  --duration S              measured seconds of the ceiling and ingest phases (10)
  --warmup S                warm-up seconds before each measured window (3)
  --concurrency N           concurrent senders (32)
  --worker-concurrency N    the worker's worker.concurrency (16)
  --installations N         GitHub App installations, one organization and subscription each (20)
  --latency-rate N          events/s offered in the latency phase (200)
  --latency-duration S      measured seconds of the latency phase (10)
  --phases a,b              ceiling, ingest, delivery, latency (all; delivery needs ingest)
  --no-fsync                PostgreSQL without fsync and synchronous commit
  --through-hono            ingest through hono instead of the route's front door (the target
                            key percent-encoded in the path), for comparisons
  --pg-statements           print PostgreSQL's costliest statements of the ingest and delivery phases
                            (pg_stat_statements: calls, rows, execution and planning ms)
  --profile DIR             run the API and the worker under node --cpu-prof, summarise
  --trace DIR               line the ingest phase's slowest acknowledgements up with the API's
                            and the sender's GC pauses and event-loop stalls and PostgreSQL's
                            slow statements, checkpoints and autovacuum (files kept in DIR)
  --build bundle|tsx        run the services from their bundles (default, as deployed) or from
                            their sources through tsx (profiles then name source files)
  --alloc DIR               measure the API's allocation over the ingest phase (v8.GCProfiler,
                            alloc-probe.mjs): KB allocated and promoted per event, scavenges and
                            mark-compacts per second; --alloc-sites adds a sampling heap profile
                            of where it was allocated (slows the API)
  --api-flags "FLAGS"       the API's node flags instead of SERVICE_NODE_FLAGS (scripts/build.ts),
                            e.g. "--max-semi-space-size=8 --trace-gc" ("" for none)
  --log DIR                 keep the API's and the worker's logs (default: /dev/null)
  --env KEY=VALUE           a setting for the API and the worker (repeatable), e.g.
                            KEYWAY_DATABASE__POOL_SIZE=20
  --help                    this text
`;

const TARGETS = { ingestEventsPerSecond: 1000, ingestP99Ms: 50, deliveriesPerSecond: 500 };
const TARGET_KEY = "bench-github";
const WEBHOOK_SECRET = `bench-${randomBytes(16).toString("hex")}`;
const PHASES = ["ceiling", "ingest", "delivery", "latency"] as const;
type Phase = (typeof PHASES)[number];

function flag(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  if (at < 0) return undefined;
  const value = process.argv[at + 1];
  if (!value || value.startsWith("--")) throw new Error(`${name} needs a value`);
  return value;
}

function numberFlag(name: string, fallback: number, min: number): number {
  const text = flag(name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < min) throw new Error(`${name} must be a number ≥ ${min}`);
  return value;
}

if (process.argv.includes("--help")) {
  process.stdout.write(HELP);
  process.exit(0);
}
const jsonFile = jsonOutputPath();
const durationS = numberFlag("--duration", 10, 1);
const warmupS = numberFlag("--warmup", 3, 0);
const concurrency = Math.round(numberFlag("--concurrency", 32, 1));
const workerConcurrency = Math.round(numberFlag("--worker-concurrency", 16, 1));
const installations = Math.round(numberFlag("--installations", 20, 1));
const latencyRate = numberFlag("--latency-rate", 200, 1);
const latencyDurationS = numberFlag("--latency-duration", 10, 1);
const durable = !process.argv.includes("--no-fsync");
const throughHono = process.argv.includes("--through-hono");
const profileDir = flag("--profile");
const traceDir = flag("--trace");
/** `--api-flags "…"`: the API's node flags instead of `SERVICE_NODE_FLAGS`' (an empty string: none). */
const apiFlags = process.argv.includes("--api-flags")
  ? (process.argv[process.argv.indexOf("--api-flags") + 1] ?? "")
  : undefined;
/** `--trace`: the preload that records a process's GC pauses and event-loop stalls. */
const probeArgs = (name: string): { args: string[]; env: NodeJS.ProcessEnv } =>
  traceDir === undefined
    ? { args: [], env: {} }
    : {
        args: ["--import", join(repoRoot, "scripts/bench/runtime-probe.mjs")],
        env: { KEYWAY_RUNTIME_PROBE_FILE: join(resolve(traceDir), name) },
      };
const allocDir = flag("--alloc");
const allocSites = process.argv.includes("--alloc-sites");
const logDir = flag("--log");
const build = flag("--build") ?? "bundle";
if (build !== "bundle" && build !== "tsx") throw new Error("--build is bundle or tsx");
/** `--env KEY=VALUE`, repeatable: configuration overrides for the API and the worker. */
const extraEnv = Object.fromEntries(
  process.argv.flatMap((arg, i) => {
    if (arg !== "--env") return [];
    const pair = process.argv[i + 1] ?? "";
    const at = pair.indexOf("=");
    if (at < 1) throw new Error("--env needs KEY=VALUE");
    return [[pair.slice(0, at), pair.slice(at + 1)]];
  }),
);
const phases = new Set<Phase>(
  (flag("--phases")?.split(",") ?? PHASES).map((phase) => {
    if (!(PHASES as readonly string[]).includes(phase)) throw new Error(`unknown phase ${phase}`);
    return phase as Phase;
  }),
);
if (phases.has("delivery") && !phases.has("ingest")) {
  throw new Error("the delivery phase delivers what the ingest phase queued: add ingest");
}

interface LoadSample {
  /** 1-minute load average at the start and at the end of the phase. */
  loadStart: number;
  loadEnd: number;
}

interface IngestFigures extends LoadSample {
  sender: SenderResult;
  /** CPU time per acknowledged event over the phase (warm-up included), by process. */
  cpuUsPerEvent: { api: number; postgres: number; sender: number };
  /** `--alloc`: the API's allocation over the phase (warm-up included). */
  allocation?: AllocationFigures;
  stored: { events: number; jobs: number; auditEntries: number; auditChainOk: boolean };
}

interface DeliveryFigures extends LoadSample {
  deliveries: number;
  /** From the first delivery the subscriber received to the last. */
  deliveriesPerSecond: number;
  /** From the worker's start (process spawned) to the last delivery. */
  drainSeconds: number;
  cpuUsPerDelivery: { worker: number; postgres: number };
  signaturesChecked: number;
  signatureFailures: number;
  delivered: number;
}

interface LatencyFigures extends LoadSample {
  sender: SenderResult;
  events: number;
  delivered: number;
  ingestToDeliveryMs: { p50: number; p95: number; p99: number; max: number };
  /** Where the time went, from the rows' own timestamps (p50 / p99, ms). */
  stagesMs: Record<string, { p50: number; p99: number }>;
}

// ---------------------------------------------------------------------------------------------
// The loopback subscriber and the trivial server

interface Subscriber {
  url: string;
  /** First arrival of each `webhook-id`, epoch ms. */
  arrivals: Map<string, number>;
  requests: number;
  signaturesChecked: number;
  signatureFailures: number;
  waitForDeliveries(count: number, timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Answers 204 to every POST, keeping each `webhook-id`'s first arrival. Every 50th request is
 * verified with the reference Standard Webhooks library under its subscription's secret (the
 * path names the subscription), so the figures are of correctly signed deliveries.
 */
async function startSubscriber(secrets: Map<string, string>): Promise<Subscriber> {
  const arrivals = new Map<string, number>();
  const state = { requests: 0, signaturesChecked: 0, signatureFailures: 0 };
  let waiter: { count: number; wake: () => void } | undefined;
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const arrived = epochMs();
      state.requests++;
      const id = request.headers["webhook-id"];
      if (typeof id === "string" && !arrivals.has(id)) arrivals.set(id, arrived);
      if (state.requests % 50 === 1) {
        state.signaturesChecked++;
        const secret = secrets.get(request.url ?? "");
        try {
          if (secret === undefined) throw new Error(`no subscription at ${request.url}`);
          verifyWithReferenceLibrary(
            { headers: request.headers, body: Buffer.concat(chunks).toString("utf8") },
            secret,
          );
        } catch {
          state.signatureFailures++;
        }
      }
      response.writeHead(204).end();
      if (waiter !== undefined && arrivals.size >= waiter.count) waiter.wake();
    });
  });
  const url = await listen(server);
  return {
    url,
    arrivals,
    get requests() {
      return state.requests;
    },
    get signaturesChecked() {
      return state.signaturesChecked;
    },
    get signatureFailures() {
      return state.signatureFailures;
    },
    async waitForDeliveries(count, timeoutMs) {
      if (arrivals.size >= count) return;
      await new Promise<void>((resolveWait, reject) => {
        const timer = setTimeout(() => {
          waiter = undefined;
          reject(new Error(`expected ${count} deliveries, got ${arrivals.size}`));
        }, timeoutMs);
        waiter = {
          count,
          wake: () => {
            clearTimeout(timer);
            waiter = undefined;
            resolveWait();
          },
        };
      });
    },
    close: () => closeServer(server),
  };
}

/** What the sender's ceiling is measured against: reads the body, answers 202 like the API. */
async function startTrivialServer(): Promise<{ url: string; close(): Promise<void> }> {
  let n = 0;
  const server = createServer((request, response) => {
    request.resume();
    request.on("end", () => {
      const body = JSON.stringify({ id: `whe_trivial${n++}`, duplicate: false });
      response.writeHead(202, { "content-type": "application/json" }).end(body);
    });
  });
  const url = await listen(server);
  return { url, close: () => closeServer(server) };
}

async function listen(server: Server): Promise<string> {
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolveListen) => server.listen(0, "127.0.0.1", resolveListen));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolveClose) => server.close(() => resolveClose()));
}

// ---------------------------------------------------------------------------------------------

async function runSender(spec: SenderSpec): Promise<{ result: SenderResult; cpuMs: number }> {
  const probe = probeArgs("sender");
  const sender = spawnNode(
    [
      ...probe.args,
      "--import",
      "tsx",
      join(repoRoot, "scripts/bench/webhooks-sender.ts"),
      JSON.stringify(spec),
    ],
    { env: probe.env },
  );
  const code = await new Promise<number | null>((resolveExit) =>
    sender.child.once("exit", (exitCode) => resolveExit(exitCode)),
  );
  if (code !== 0) throw new Error(`the sender exited with ${code}:\n${sender.output()}`);
  const line = sender
    .output()
    .split("\n")
    .find((l) => l.startsWith("SENDER_JSON "));
  if (line === undefined) throw new Error(`no SENDER_JSON line in:\n${sender.output()}`);
  // Written by webhooks-sender.ts from a SenderResult; its CPU is measured by itself, from its
  // first send to its last answer (its start is not the benchmark's load).
  const result = JSON.parse(line.slice("SENDER_JSON ".length)) as SenderResult;
  return { result, cpuMs: result.cpuMs };
}

function postgresPids(postmaster: number): number[] {
  return [postmaster, ...childPids(postmaster)];
}

/**
 * PostgreSQL's CPU so far by kind of process (client backends, WAL writer, checkpointer, …), from
 * their titles; `exited` is the time of children that have exited (autovacuum workers), which
 * the per-event figure (live processes only) leaves out.
 */
function postgresCpuByKind(postmaster: number): Map<string, number> {
  const kinds = new Map<string, number>();
  const add = (kind: string, ms: number) => kinds.set(kind, (kinds.get(kind) ?? 0) + ms);
  for (const pid of postgresPids(postmaster)) {
    try {
      const title = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
      const kind =
        pid === postmaster
          ? "postmaster"
          : (/^postgres: (autovacuum \w+|\w+ writer|checkpointer|walwriter|logical replication \w+|io \w+)/.exec(
              title,
            )?.[1] ?? "backends");
      add(kind, cpuMs([pid]));
    } catch {
      // Gone: its time is counted by the postmaster's `exited` once reaped.
    }
  }
  try {
    const stat = readFileSync(`/proc/${postmaster}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    add("exited", (Number(fields[13]) + Number(fields[14])) * 10);
  } catch {
    // The server has gone.
  }
  return kinds;
}

async function countRows(database: DatabaseHandle) {
  const [row] = await database.sql<{ events: number; jobs: number; audit: number }[]>`
    select
      (select count(*)::int from webhook_events) as events,
      (select count(*)::int from ${database.sql(JOB_SCHEMA)}.job
        where name = ${webhookProcessQueue.name}) as jobs,
      (select count(*)::int from audit_log where action = 'webhook.received') as audit`;
  return row ?? { events: 0, jobs: 0, audit: 0 };
}

/**
 * The stages of a delivery, from the rows' timestamps (all taken by the API's and the worker's
 * clocks): received → fanned out (the delivery row is created by the `webhook-process` job),
 * fanned out → attempt started (the `webhook-deliver` job picked up), the attempt's own wall
 * time (the POST), and attempt end → the delivery committed as delivered.
 */
async function deliveryStages(database: DatabaseHandle, since: Date) {
  const rows = await database.sql<{ stage: string; p50: number; p99: number }[]>`
    with d as (
      select
        extract(epoch from (d.created_at - e.received_at)) * 1000 as fan_out,
        extract(epoch from (a.started_at - d.created_at)) * 1000 as pick_up,
        a.duration_ms::float8 as post,
        extract(epoch from (d.delivered_at - a.started_at)) * 1000 - a.duration_ms as record
      from webhook_deliveries d
      join webhook_events e on e.id = d.event_id
      join webhook_delivery_attempts a on a.delivery_id = d.id and a.attempt = 1
      where e.received_at >= ${since.toISOString()}::timestamptz and d.status = 'delivered'
    )
    select s.stage, percentile_cont(0.5) within group (order by s.ms) as p50,
      percentile_cont(0.99) within group (order by s.ms) as p99
    from d, lateral (values
      ('1 received → fanned out', fan_out), ('2 fanned out → attempt started', pick_up),
      ('3 POST to the subscriber', post), ('4 answer → delivery committed', record)
    ) as s(stage, ms)
    group by s.stage order by s.stage`;
  return Object.fromEntries(rows.map((row) => [row.stage, { p50: row.p50, p99: row.p99 }]));
}

/**
 * A service run as deployed: its node flags (`SERVICE_NODE_FLAGS`, or `--api-flags` for the API,
 * to compare flags) and its entry point.
 */
function spawnService(
  entry: readonly string[],
  service: "control-plane-api" | "control-plane-worker",
  env: NodeJS.ProcessEnv,
): { spawned: Spawned; pid: number } {
  const name = service === "control-plane-api" ? "api" : "worker";
  const logFd = openSync(logDir ? join(resolve(logDir), `${name}.log`) : "/dev/null", "w");
  const probe = probeArgs(name);
  if (service === "control-plane-api" && allocDir !== undefined) {
    probe.args.push("--import", join(repoRoot, "scripts/bench/alloc-probe.mjs"));
    probe.env.KEYWAY_ALLOC_PROBE_FILE = join(resolve(allocDir), "api-alloc");
    if (allocSites) probe.env.KEYWAY_ALLOC_PROBE_SITES = "1";
  }
  const nodeFlags =
    service === "control-plane-api" && apiFlags !== undefined
      ? apiFlags.split(" ").filter((f) => f !== "")
      : SERVICE_NODE_FLAGS[service];
  const spawned = spawnNode(
    [
      ...nodeFlags,
      ...(profileDir ? ["--cpu-prof", "--cpu-prof-dir", resolve(profileDir)] : []),
      ...probe.args,
      ...entry,
    ],
    { env: { ...env, ...probe.env }, stdoutFd: logFd },
  );
  closeSync(logFd);
  return { spawned, pid: spawned.child.pid ?? 0 };
}

function profileOf(pid: number): ProfileSummary | undefined {
  if (!profileDir) return undefined;
  const file = readdirSync(profileDir).find((f) => f.includes(`.${pid}.0.`));
  return file ? summarizeCpuProfile(join(profileDir, file), 25) : undefined;
}

async function main() {
  const root = await mkdtemp(join(tmpdir(), "keyway-bench-webhooks-"));
  // Run as root, PostgreSQL runs as the `postgres` user, which must reach the data directory.
  await chmod(root, 0o755);
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  if (traceDir) mkdirSync(traceDir, { recursive: true });
  if (allocDir) mkdirSync(allocDir, { recursive: true });
  if (logDir) mkdirSync(logDir, { recursive: true });
  const cleanups: (() => Promise<void>)[] = [];
  try {
    if (build === "bundle") console.log("building the API and worker bundles …");
    const [apiEntry, workerEntry] =
      build === "bundle"
        ? (
            await Promise.all([
              buildService("control-plane-api"),
              buildService("control-plane-worker"),
            ])
          ).map((bundle) => [bundle])
        : ["control-plane-api", "control-plane-worker"].map((service) => [
            "--import",
            "tsx",
            join(repoRoot, "apps", service, "src/main.ts"),
          ]);

    const pgss = process.argv.includes("--pg-statements");
    const postgresLog =
      traceDir === undefined
        ? undefined
        : createWriteStream(join(resolve(traceDir), "postgres.log"));
    const postgres = await startEmbeddedPostgres({
      dataDir: join(root, "pg"),
      durable,
      settings: {
        ...(pgss
          ? {
              shared_preload_libraries: "pg_stat_statements",
              "pg_stat_statements.track_planning": "on",
            }
          : {}),
        ...(traceDir === undefined ? {} : TRACE_POSTGRES_SETTINGS),
      },
      ...(postgresLog === undefined ? {} : { log: (line: string) => postgresLog.write(line) }),
    });
    cleanups.push(() => postgres.stop());
    await postgres.createDatabase("keyway");
    const databaseUrl = postgres.url("keyway");
    await runMigrations(databaseUrl);
    const database = createDatabase(databaseUrl, { max: 4 });
    cleanups.push(() => database.close());

    // The deployment's config, as `pnpm start` writes it, pointed at this database.
    const files = await writeDevelopmentConfig({ dir: join(root, "keyway") });
    const gatewayCa = await createTestCa({ commonName: "Keyway bench gateway CA" });
    await writeFile(files.gatewayCaCertPath, gatewayCa.certPem, { mode: 0o644 });
    await writeFile(files.gatewayCaKeyPath, gatewayCa.keyPem, { mode: 0o600 });
    const config = await loadConfig({ path: files.configPath, env: {} });
    const master = config.keys.master;
    if (master === undefined) throw new Error("the development config has no master key");
    const keyRing = createKeyRing(master);
    const registry = createCatalogueRegistry();
    const clock = { now: () => new Date() };

    // One GitHub App target; per installation an organization, its connection and a
    // subscription to every GitHub event.
    const target = await seedTarget(
      database.db,
      { keyRing, registry, clock },
      {
        variantId: "github-cloud",
        targetKey: TARGET_KEY,
        secrets: { webhookSecret: WEBHOOK_SECRET },
      },
    );
    const installationIds: string[] = [];
    const subscriptionSecrets = new Map<string, string>();
    const subscriberPaths: { organizationId: string; path: string }[] = [];
    for (let i = 0; i < installations; i++) {
      const installationId = String(4_000_000 + i);
      const organizationId = await seedOrganization(database.db, clock, `Bench org ${i}`);
      await seedConnection(
        database.db,
        { keyRing, registry, clock },
        {
          organizationId,
          target,
          methodId: "github-app",
          externalSubjectId: installationId,
        },
      );
      installationIds.push(installationId);
      subscriberPaths.push({ organizationId, path: `/hooks/${i}` });
    }
    const subscriber = await startSubscriber(subscriptionSecrets);
    cleanups.push(() => subscriber.close());
    for (const { organizationId, path } of subscriberPaths) {
      const created = await createSubscription(
        {
          db: database.db,
          keyRing,
          clock,
          settings: { webhookSecretRotationOverlapHours: 24, allowPrivateWebhookSubscribers: true },
        },
        { kind: "organization", organizationId, role: "admin", actor: "bench", via: "api-token" },
        { url: `${subscriber.url}${path}`, eventTypes: ["github.*"] },
      );
      subscriptionSecrets.set(path, created.secret);
    }

    const apiPort = await getFreePort();
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const serviceEnv = {
      KEYWAY_CONFIG: files.configPath,
      KEYWAY_DATABASE__URL: databaseUrl,
      KEYWAY_API__PORT: String(apiPort),
      KEYWAY_API__PUBLIC_URL: apiUrl,
      KEYWAY_WORKER__CONCURRENCY: String(workerConcurrency),
      KEYWAY_WEBHOOKS__ALLOW_PRIVATE_SUBSCRIBERS: "true",
      ...extraEnv,
    };
    const api = spawnService(apiEntry ?? [], "control-plane-api", serviceEnv);
    cleanups.push(() => stop(api.spawned.child));
    await waitFor("control-plane API", () => isReady(apiUrl), api.spawned);
    // `--through-hono`: the key's first character percent-encoded, which the route's front door
    // leaves to hono (`webhooks/ingest-front-door.ts`): the route as served before it.
    const targetKeyInPath = throughHono
      ? `%${TARGET_KEY.charCodeAt(0).toString(16)}${TARGET_KEY.slice(1)}`
      : TARGET_KEY;
    const ingestUrl = `${apiUrl}/p/integration/webhooks/${targetKeyInPath}`;
    const senderSpec = (url: string): SenderSpec => ({
      url,
      secret: WEBHOOK_SECRET,
      installationIds,
      concurrency,
      mode: "closed",
      warmupMs: warmupS * 1000,
      durationMs: durationS * 1000,
    });
    const load = () => os.loadavg()[0] ?? 0;

    let ceiling: (SenderResult & LoadSample) | undefined;
    if (phases.has("ceiling")) {
      console.log("phase 1: the sender against a trivial server …");
      const trivial = await startTrivialServer();
      const loadStart = load();
      const { result } = await runSender(senderSpec(`${trivial.url}/p/integration/webhooks/x`));
      ceiling = { ...result, loadStart, loadEnd: load() };
      await trivial.close();
    }

    let ingest: IngestFigures | undefined;
    if (phases.has("ingest")) {
      console.log("phase 2: ingest …");
      if (pgss) await resetStatements(database);
      const loadStart = load();
      const pgPids = postgresPids(postgres.pid ?? 0);
      const pgKindsBefore = postgresCpuByKind(postgres.pid ?? 0);
      const before = { api: cpuMs([api.pid]), postgres: cpuMs(pgPids) };
      const walBefore = traceDir === undefined ? undefined : await walStats(database);
      if (allocDir !== undefined) process.kill(api.pid, "SIGUSR2");
      const { result, cpuMs: senderCpuMs } = await runSender({
        ...senderSpec(ingestUrl),
        ...(traceDir === undefined
          ? {}
          : { traceFile: join(resolve(traceDir), "ingest-requests.txt") }),
      });
      const after = { api: cpuMs([api.pid]), postgres: cpuMs(postgresPids(postgres.pid ?? 0)) };
      if (allocDir !== undefined) process.kill(api.pid, "SIGUSR2");
      const pgKindsAfter = postgresCpuByKind(postgres.pid ?? 0);
      const loadEnd = load();
      if (pgss) await printStatements(database, "ingest");
      if (walBefore !== undefined) printWalStats(walBefore, await walStats(database), result);
      const counts = await countRows(database);
      // The API's sealer links entries within a fraction of a second; this seals what it has not
      // reached yet (waiting on its lock), then checks every chain and checkpoint.
      await createAuditSealer({
        db: database.db,
        keyRing,
        clock,
        logger: createLogger({ level: "warn" }),
      }).sealNow({ checkpoint: true });
      const chain = await verifyAuditChain(database.db, keyRing);
      const per = (ms: number) => (ms * 1000) / Math.max(1, result.acceptedIncludingWarmup);
      const byKind = [...pgKindsAfter]
        .map(([kind, ms]) => `${kind} ${per(ms - (pgKindsBefore.get(kind) ?? 0)).toFixed(0)}`)
        .join(", ");
      console.log(`PostgreSQL CPU µs per event by process: ${byKind}`);
      const alloc =
        allocDir === undefined
          ? undefined
          : await readAllocation(allocDir, api.pid, result.acceptedIncludingWarmup);
      ingest = {
        ...(alloc === undefined ? {} : { allocation: alloc }),
        sender: result,
        cpuUsPerEvent: {
          api: per(after.api - before.api),
          postgres: per(after.postgres - before.postgres),
          sender: per(senderCpuMs),
        },
        stored: {
          events: counts.events,
          jobs: counts.jobs,
          auditEntries: counts.audit,
          auditChainOk: chain.ok,
        },
        loadStart,
        loadEnd,
      };
    }

    let delivery: DeliveryFigures | undefined;
    let worker: { spawned: Spawned; pid: number } | undefined;
    const startWorker = () => {
      const started = spawnService(workerEntry ?? [], "control-plane-worker", serviceEnv);
      cleanups.push(() => stop(started.spawned.child));
      return started;
    };
    if (phases.has("delivery") && ingest !== undefined) {
      const queued = ingest.stored.events;
      console.log(`phase 3: the worker delivers ${queued} queued events …`);
      const loadStart = load();
      if (pgss) await resetStatements(database);
      const pgBefore = cpuMs(postgresPids(postgres.pid ?? 0));
      const spawnedAt = epochMs();
      worker = startWorker();
      await subscriber.waitForDeliveries(queued, 600_000);
      const arrivals = [...subscriber.arrivals.values()].sort((a, b) => a - b);
      const first = arrivals[0] ?? 0;
      const last = arrivals.at(-1) ?? 0;
      const workerCpu = cpuMs([worker.pid]);
      const pgCpu = cpuMs(postgresPids(postgres.pid ?? 0)) - pgBefore;
      // The last attempts' records commit just after their POSTs arrived (a batch of attempts
      // commits together): give them a few seconds before counting.
      let delivered: { n: number } | undefined;
      for (let i = 0; i < 50; i++) {
        [delivered] = await database.sql<{ n: number }[]>`
          select count(*)::int as n from webhook_deliveries where status = 'delivered'`;
        if ((delivered?.n ?? 0) >= queued) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      if (pgss) await printStatements(database, "delivery");
      delivery = {
        deliveries: arrivals.length,
        deliveriesPerSecond: ((arrivals.length - 1) * 1000) / Math.max(1, last - first),
        drainSeconds: (last - spawnedAt) / 1000,
        // The worker's CPU includes its start (a few hundred ms of module loading).
        cpuUsPerDelivery: {
          worker: (workerCpu * 1000) / arrivals.length,
          postgres: (pgCpu * 1000) / arrivals.length,
        },
        signaturesChecked: subscriber.signaturesChecked,
        signatureFailures: subscriber.signatureFailures,
        delivered: delivered?.n ?? 0,
        loadStart,
        loadEnd: load(),
      };
    }

    let latency: LatencyFigures | undefined;
    if (phases.has("latency")) {
      console.log(`phase 4: ingest-to-delivery latency at ${latencyRate} events/s …`);
      worker ??= startWorker();
      // Wait until the worker answers the queue (its first delivery after start-up).
      const loadStart = load();
      const since = new Date();
      const eventsFile = join(root, "latency-events.txt");
      const { result } = await runSender({
        ...senderSpec(ingestUrl),
        mode: "open",
        ratePerSecond: latencyRate,
        warmupMs: 2000,
        durationMs: latencyDurationS * 1000,
        eventsFile,
      });
      const sent = readFileSync(eventsFile, "utf8")
        .trim()
        .split("\n")
        .map((line) => line.split(" "))
        .map(([id, at]) => ({ id: id ?? "", at: Number(at) }));
      const expected = subscriber.arrivals.size + sent.length;
      await subscriber.waitForDeliveries(expected, 120_000).catch(() => {});
      const latencies = sent.flatMap(({ id, at }) => {
        const arrived = subscriber.arrivals.get(id);
        return arrived === undefined ? [] : [arrived - at];
      });
      latency = {
        sender: result,
        events: sent.length,
        delivered: latencies.length,
        ingestToDeliveryMs: {
          p50: percentile(latencies, 50),
          p95: percentile(latencies, 95),
          p99: percentile(latencies, 99),
          max: latencies.reduce((a, b) => Math.max(a, b), 0),
        },
        stagesMs: await deliveryStages(database, since),
        loadStart,
        loadEnd: load(),
      };
    }

    // Stopped before reading the profiles: node writes them on exit.
    if (worker) await stop(worker.spawned.child);
    await stop(api.spawned.child);
    // The API's probe writes its pauses as it exits.
    if (traceDir !== undefined && ingest !== undefined) printTrace(resolve(traceDir));
    const profiles = {
      api: profileOf(api.pid),
      worker: worker ? profileOf(worker.pid) : undefined,
    };
    report({ ceiling, ingest, delivery, latency, profiles });
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    await rm(root, { recursive: true, force: true });
  }
}

function report(figures: {
  ceiling: (SenderResult & LoadSample) | undefined;
  ingest: IngestFigures | undefined;
  delivery: DeliveryFigures | undefined;
  latency: LatencyFigures | undefined;
  profiles: { api: ProfileSummary | undefined; worker: ProfileSummary | undefined };
}) {
  const { ceiling, ingest, delivery, latency, profiles } = figures;
  const machine = machineFacts(
    ["pnpm bench:webhooks", ...process.argv.slice(2)].join(" ").replace(/\s+$/, ""),
  );
  console.log(`\nwebhook benchmark — ${machine.cpu}, ${machine.cores} cores, node ${machine.node}`);
  console.log(
    `PostgreSQL ${durable ? "durable (fsync on)" : "fsync off"}, ${concurrency} senders, ` +
      `worker concurrency ${workerConcurrency}, ${installations} installations`,
  );
  const row = (result: SenderResult, load: LoadSample) => ({
    "events/s": result.eventsPerSecond.toFixed(0),
    "p50 ms": result.ackMs.p50.toFixed(2),
    "p95 ms": result.ackMs.p95.toFixed(2),
    "p99 ms": result.ackMs.p99.toFixed(2),
    "max ms": result.ackMs.max.toFixed(1),
    errors: Object.values(result.errors).reduce((a, b) => a + b, 0),
    load: `${load.loadStart.toFixed(1)}→${load.loadEnd.toFixed(1)}`,
  });
  const table: Record<string, unknown> = {};
  if (ceiling) table["sender → trivial server (ceiling)"] = row(ceiling, ceiling);
  if (ingest) table["sender → ingest route"] = row(ingest.sender, ingest);
  if (latency) table[`ingest at ${latencyRate}/s, worker running`] = row(latency.sender, latency);
  console.table(table);
  if (ingest) {
    const { stored, cpuUsPerEvent: cpu, sender } = ingest;
    console.log(
      `ingest: ${sender.acceptedIncludingWarmup} acknowledged (warm-up included); stored ` +
        `${stored.events} events, ${stored.jobs} webhook-process jobs, ${stored.auditEntries} ` +
        `webhook.received audit entries; audit chain ${stored.auditChainOk ? "verifies" : "BROKEN"}; ` +
        `mean body ${sender.meanBodyBytes.toFixed(0)} bytes`,
    );
    console.log(
      `CPU per event: API ${cpu.api.toFixed(0)} µs, PostgreSQL ${cpu.postgres.toFixed(0)} µs, ` +
        `sender ${cpu.sender.toFixed(0)} µs`,
    );
    if (ingest.allocation) printAllocation(ingest.allocation);
  }
  if (delivery) {
    console.log(
      `delivery: ${delivery.deliveries} deliveries at ${delivery.deliveriesPerSecond.toFixed(0)}/s ` +
        `(first to last), ${delivery.drainSeconds.toFixed(1)} s from the worker's start; ` +
        `${delivery.delivered} marked delivered; signatures checked ${delivery.signaturesChecked}, ` +
        `failed ${delivery.signatureFailures}; CPU per delivery: worker ` +
        `${delivery.cpuUsPerDelivery.worker.toFixed(0)} µs, PostgreSQL ` +
        `${delivery.cpuUsPerDelivery.postgres.toFixed(0)} µs; load ` +
        `${delivery.loadStart.toFixed(1)}→${delivery.loadEnd.toFixed(1)}`,
    );
  }
  if (latency) {
    const l = latency.ingestToDeliveryMs;
    console.log(
      `ingest-to-delivery at ${latencyRate} events/s: p50 ${l.p50.toFixed(1)} ms, p95 ` +
        `${l.p95.toFixed(1)} ms, p99 ${l.p99.toFixed(1)} ms, max ${l.max.toFixed(1)} ms ` +
        `(${latency.delivered} of ${latency.events} events delivered; ${latency.sender.lateSends} late sends)`,
    );
    for (const [stage, { p50, p99 }] of Object.entries(latency.stagesMs)) {
      console.log(`  ${stage}: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`);
    }
  }
  const verdicts = {
    ingestThroughput: ingest
      ? ingest.sender.eventsPerSecond >= TARGETS.ingestEventsPerSecond
      : undefined,
    ingestP99: ingest ? ingest.sender.ackMs.p99 < TARGETS.ingestP99Ms : undefined,
    deliveryThroughput: delivery
      ? delivery.deliveriesPerSecond >= TARGETS.deliveriesPerSecond
      : undefined,
  };
  const verdict = (ok: boolean | undefined) =>
    ok === undefined ? "not run" : ok ? "met" : "NOT met";
  console.log(
    `\ntargets: ingest ≥ ${TARGETS.ingestEventsPerSecond} events/s ${verdict(verdicts.ingestThroughput)}, ` +
      `p99 < ${TARGETS.ingestP99Ms} ms ${verdict(verdicts.ingestP99)}; delivery ≥ ` +
      `${TARGETS.deliveriesPerSecond}/s ${verdict(verdicts.deliveryThroughput)}`,
  );
  if (profiles.api) {
    console.log("\nAPI process");
    printProfileSummary(profiles.api);
  }
  if (profiles.worker) {
    console.log("\nworker process");
    printProfileSummary(profiles.worker);
  }
  writeJson(jsonFile, {
    settings: {
      durable,
      concurrency,
      workerConcurrency,
      installations,
      durationS,
      warmupS,
      latencyRate,
      latencyDurationS,
    },
    targets: TARGETS,
    verdicts,
    ceiling,
    ingest,
    delivery,
    latency,
    profiles,
    ...machine,
  });
}

await main();
// Pools and timers of the seeding helpers may linger; the run is over.
process.exit(0);

async function resetStatements(database: DatabaseHandle): Promise<void> {
  await database.sql`create extension if not exists pg_stat_statements`;
  await database.sql`select pg_stat_statements_reset()`;
}

/**
 * Where PostgreSQL's time in a phase went, statement by statement (execution and planning only:
 * parsing, commits and the socket are not in these figures).
 */
async function printStatements(database: DatabaseHandle, phase: string): Promise<void> {
  const top = await database.sql`
    select calls, rows, round(total_exec_time::numeric, 1) as exec_ms,
      round(total_plan_time::numeric, 1) as plan_ms,
      left(regexp_replace(query, '\\s+', ' ', 'g'), 100) as query
    from pg_stat_statements order by total_exec_time + total_plan_time desc limit 12`;
  console.log(`PostgreSQL's costliest statements of the ${phase} phase:`);
  console.table(top);
}

interface AllocationFigures {
  /** KB allocated in the API's heap per acknowledged event, and promoted to the old generation. */
  allocatedKbPerEvent: number;
  promotedKbPerEvent: number;
  /** Per second of the window, with the mean and longest pause (ms) of each kind. */
  gcs: Record<string, { perSecond: number; meanMs: number; maxMs: number }>;
  windowS: number;
  /** `--alloc-sites`: where the window's bytes were allocated, by function, KB per event. */
  sites?: { site: string; kbPerEvent: number }[];
}

interface ProbeProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProbeProfileNode[];
}

/** The alloc probe's file (written by the API when the phase's second SIGUSR2 arrives). */
async function readAllocation(
  dir: string,
  pid: number,
  events: number,
): Promise<AllocationFigures | undefined> {
  const path = join(resolve(dir), `api-alloc.${pid}.json`);
  for (let waited = 0; waited < 20_000; waited += 100) {
    try {
      const data = JSON.parse(readFileSync(path, "utf8")) as {
        windowMs: number;
        allocatedBytes: number;
        promotedBytes: number;
        gcs: Record<string, { count: number; costUs: number; maxUs: number }>;
        profile?: { head: ProbeProfileNode };
      };
      const windowS = data.windowMs / 1000;
      const perEvent = (bytes: number) => bytes / 1024 / Math.max(1, events);
      const figures: AllocationFigures = {
        allocatedKbPerEvent: perEvent(data.allocatedBytes),
        promotedKbPerEvent: perEvent(data.promotedBytes),
        gcs: Object.fromEntries(
          Object.entries(data.gcs).map(([kind, g]) => [
            kind,
            {
              perSecond: g.count / windowS,
              meanMs: g.costUs / 1000 / Math.max(1, g.count),
              maxMs: g.maxUs / 1000,
            },
          ]),
        ),
        windowS,
      };
      if (data.profile) {
        const bySite = new Map<string, number>();
        const walk = (node: ProbeProfileNode) => {
          const { functionName, url, lineNumber } = node.callFrame;
          const site = `${functionName || "(anonymous)"} ${url.replace(/^.*\//, "")}:${lineNumber + 1}`;
          bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
          for (const child of node.children) walk(child);
        };
        walk(data.profile.head);
        figures.sites = [...bySite]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 30)
          .map(([site, bytes]) => ({ site, kbPerEvent: perEvent(bytes) }));
      }
      return figures;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT" && !(error instanceof SyntaxError)) {
        throw error;
      }
      await new Promise((done) => setTimeout(done, 100));
    }
  }
  console.log(`no allocation figures from the API (${path})`);
  return undefined;
}

function printAllocation(alloc: AllocationFigures): void {
  const gcs = Object.entries(alloc.gcs)
    .map(
      ([kind, g]) =>
        `${kind} ${g.perSecond.toFixed(2)}/s (mean ${g.meanMs.toFixed(1)} ms, max ${g.maxMs.toFixed(1)} ms)`,
    )
    .join(", ");
  console.log(
    `API allocation per event: ${alloc.allocatedKbPerEvent.toFixed(1)} KB allocated, ` +
      `${alloc.promotedKbPerEvent.toFixed(1)} KB promoted; GCs: ${gcs}`,
  );
  if (alloc.sites) {
    console.log("where (sampling heap profile, KB per event, by allocating function):");
    for (const { site, kbPerEvent } of alloc.sites) {
      console.log(`  ${kbPerEvent.toFixed(2).padStart(7)}  ${site}`);
    }
  }
}
