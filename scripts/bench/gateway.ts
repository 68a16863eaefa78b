/**
 * Gateway benchmark (SPEC §11): throughput and latency of the data-plane gateway against a direct
 * connection to the same upstream and against nginx doing the same header injection, in one run.
 *
 *   pnpm bench:gateway [--json FILE] [--duration S] [--warmup S] [--first-warmup S] [--cases a,b]
 *                      [--profile DIR]
 *                      [--connections 1,16,64] [--loadgen undici] [--log FILE]
 *                      [--gateway-node-flags "--trace-gc …"] [--gateway-build bundle|tsx]
 *                      [--gateway-bundle FILE] [--compare-bundle FILE [--rounds R]]
 *                      [--routes N] [--sessions N [--distinct-plans]] [--alloc]
 *                      [--plan-curve 1,100,1000,5000 [--sessions N] [--rounds R]]
 *
 * Processes (each its own event loop; the parent only orchestrates and serves the control plane):
 * - upstream: `gateway-upstream.ts`, a small Node HTTP and HTTPS server (keep-alive, TCP_NODELAY)
 *   answering a 64-byte JSON body;
 * - gateway: the deployed bundle `apps/data-plane-gateway/dist/main.mjs` (built first, run by
 *   plain `node`; `--gateway-build tsx` runs the sources through tsx instead) from a config file, every
 *   feature on — session token verification (cached per header value after the first), plan
 *   match, egress policy, credential from the cache (warmed before measuring), metrics, and one
 *   formatted JSON log line per request, written to `--log` (default /dev/null);
 * - control plane: the real API app on an embedded PostgreSQL in this process
 *   (`gateway-control-plane.ts`). Resolution on a cache miss is measured by `pnpm bench:resolve`;
 *   here credentials are cached;
 * - nginx (when installed): a header-injecting reverse proxy to the same upstream, one worker
 *   process — the gateway is one Node event loop, so both get one core for request work;
 * - load: `wrk` (one thread) when installed, for plain HTTP (absolute-form requests through the
 *   gateway via a Lua script); HTTPS cases (and everything when wrk is missing) use
 *   `gateway-load.ts`, a closed-loop undici generator in its own process — for HTTPS through the
 *   gateway an undici `ProxyAgent` (CONNECT, TLS interception, warm keep-alive tunnels), and the
 *   same generator for direct HTTPS so that the ratio compares like with like.
 *
 * Each measured window also reports the machine (`gateway-window.ts`: other work, steal, a speed
 * probe, the Node proxy's threads, kernel time, preemptions), and the run ends with the list of
 * windows disturbed enough that their figures are not comparable with a quiet run.
 *
 * `--profile DIR` runs the gateway under `node --cpu-prof` and prints where its CPU time went.
 * `--plan-curve` runs only plain HTTP through the gateway, once per plan count and round (below).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { Agent, request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createTestCa, getFreePort } from "@keyway/test-harness";
import { createLeafIssuer } from "@keyway/x509";
import { ProxyAgent, request } from "undici";
import { createLeafContexts } from "../../apps/data-plane-gateway/src/leaf-certificates";
import { buildService, SERVICE_NODE_FLAGS } from "../build";
import { jsonOutputPath, machineFacts, percentile, writeJson } from "./bench-lib";
import { type ProfileSummary, printProfileSummary, summarizeCpuProfile } from "./cpuprofile-top";
import {
  type BenchControlPlane,
  benchGatewayConfig,
  startBenchControlPlane,
} from "./gateway-control-plane";
import type { LoadResult, LoadSpec } from "./gateway-load";
import {
  crossCpuRoundTripNs,
  disturbance,
  runFastest,
  startWindow,
  type WindowFacts,
} from "./gateway-window";
import {
  canConnect,
  childPids,
  cpuMs,
  isReady,
  repoRoot,
  rssMb,
  runProcess,
  type Spawned,
  spawnNode,
  stop,
  waitFor,
} from "./processes";

const here = dirname(fileURLToPath(import.meta.url));
const GATEWAY_MAIN = join(repoRoot, "apps/data-plane-gateway/src/main.ts");

const CONCURRENCY = [1, 16, 64] as const;
const PATH = "/v1/items/42";
const CHECK_PATH = "/v1/__check";
const SECRET = "sk-bench-0123456789abcdef";
const POST_BODY = JSON.stringify({ name: "bench", tags: Array.from({ length: 24 }, (_, i) => i) });
/** Fresh hosts issued to measure leaf issuance. */
const LEAF_HOSTS = 50;
/**
 * Routes in each session's plan (`--routes`, default 20): the two benchmarked ones among unrelated
 * routes, so matching works on a realistic index. `--sessions N` (default 1) creates N sessions on
 * one plan, or with `--distinct-plans` each on its own plan (its own profile version), and wrk's
 * plain-HTTP cases rotate through their tokens request by request; HTTPS cases use the first.
 * Every session sends one request before the cases start (its token verified, its plan and
 * credential loaded), so the cases measure sessions in use, not their first request.
 */
const PLAN_ROUTES = positiveIntegerFlag("--routes", 20, 2);
const OTHER_ROUTES = PLAN_ROUTES - 2;
const DISTINCT_PLANS = process.argv.includes("--distinct-plans");
/**
 * `--plan-curve 1,100,1000,5000`: one group of `--sessions` sessions (default the largest count)
 * per plan count, spread over that many plans, all created up front; then, per round (`--rounds`,
 * default 2) and per count, the group's sessions are warmed and wrk rotates through them at the
 * first `--connections` value (default 16). Only the number of distinct plans differs between the
 * points, and every point of a round is measured by the same gateway, so ratios to the one-plan
 * point compare like with like. Before each warm-up the control plane announces a change to every
 * connection, so each point starts with credentials just resolved and none reaches its five-minute
 * cache limit while the point is measured. After each point the run reads `/metrics` (size, and the distinct
 * routes that had traffic so far) and counts the control plane's plan lookups and credential
 * resolutions during it.
 */
const PLAN_CURVE = flag("--plan-curve")
  ?.split(",")
  .map((n) => {
    const count = Number(n);
    if (!Number.isInteger(count) || count < 1) throw new Error("--plan-curve takes counts ≥ 1");
    return count;
  });
const SESSIONS = positiveIntegerFlag(
  "--sessions",
  PLAN_CURVE === undefined ? 1 : Math.max(...PLAN_CURVE),
  1,
);
const ROUNDS = positiveIntegerFlag("--rounds", 2, 1);
if (PLAN_CURVE?.some((count) => count > SESSIONS)) {
  throw new Error("--sessions must be at least the largest --plan-curve count");
}

const TARGETS = {
  nginxRatioAt16: 0.45,
  addedP50Ms: 0.25,
  addedP99Ms: 2,
  httpsRatio: 0.3,
  rssMb: 150,
  leafIssueMs: 5,
  /** A Nagle/delayed-ACK stall shows as ~40 ms; anything near it at c=1 is that penalty. */
  nagleMs: 40,
};

function flag(name: string, valueMayLookLikeAFlag = false): string | undefined {
  const at = process.argv.indexOf(name);
  if (at < 0) return undefined;
  const value = process.argv[at + 1];
  if (!value || (value.startsWith("--") && !valueMayLookLikeAFlag)) {
    throw new Error(`${name} needs a value`);
  }
  return value;
}

const jsonFile = jsonOutputPath();
const durationS = Number(flag("--duration") ?? 10);
const warmupS = Number(flag("--warmup") ?? 2);
/**
 * Warm-up before a proxy's first measured case (`--first-warmup S`, default 6): a fresh Node
 * process keeps optimizing for several seconds under load. Run alone and side by side, a fresh
 * gateway's first 4 s cost 15–30 % more CPU per request than later rounds (2026-12-06, Node 20
 * and 24), so a 2 s warm-up left part of that in the measured window of the gateway and the plain
 * forwarder (nginx needs none). Later cases of the same proxy use `--warmup`.
 */
const firstWarmupS = Number(flag("--first-warmup") ?? Math.max(6, warmupS));
/** Proxies (via and port) that have had their first warm-up. */
const warmedUp = new Set<string>();
const profileDir = flag("--profile");
const onlyCases = flag("--cases")?.split(",");

function positiveIntegerFlag(name: string, fallback: number, min: number): number {
  const text = flag(name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min)
    throw new Error(`${name} must be an integer ≥ ${min}`);
  return value;
}
const onlyConnections = flag("--connections")?.split(",").map(Number);
/**
 * `--alloc`: runs the gateway with `--trace-gc-nvp` and reports the bytes it allocated per request
 * over the run (the GC lines' `allocated` summed, divided by the requests it served), to compare
 * per-request allocation across `--routes` and `--sessions`. The GC lines go to the log file.
 */
const measureAllocation = process.argv.includes("--alloc");
const logFile = flag("--log") ?? (measureAllocation ? "" : "/dev/null");
/** Extra `node` flags for the gateway process (diagnostics such as `--trace-gc`). */
const gatewayNodeFlags =
  flag("--gateway-node-flags", true)
    ?.split(" ")
    .filter((f) => f !== "") ?? [];

function hasCommand(command: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const useWrk = flag("--loadgen") !== "undici" && hasCommand("wrk");
const useNginx = hasCommand("nginx");
/**
 * `bundle` (default): the gateway as deployed, `node apps/data-plane-gateway/dist/main.mjs`
 * built by `scripts/build.ts` (the image, `pnpm start` and the system tests run the same file).
 * `tsx`: the sources through tsx's loader (`node --import tsx src/main.ts`), for comparison.
 */
const gatewayBuild = flag("--gateway-build") ?? "bundle";
if (gatewayBuild !== "tsx" && gatewayBuild !== "bundle") {
  throw new Error("--gateway-build is bundle or tsx");
}
/**
 * `--gateway-bundle FILE`: run this bundle instead of building one, e.g. one built from an earlier
 * commit to compare before and after (it must sit in `apps/data-plane-gateway/dist/` to resolve
 * its external packages).
 */
const gatewayBundle = flag("--gateway-bundle");
/**
 * `--compare-bundle FILE`: a second gateway from FILE (same control plane, config and upstream,
 * its own ports) next to the first, then only plain HTTP at the first `--connections` value
 * (default 16), the two gateways in turn for `--rounds` rounds (default 2; which goes first
 * alternates). On a machine shared with other work, CPU per request moves by ±10 % from one
 * minute to the next; interleaving a few-second run of each puts both under the same load, and
 * the per-round ratio compares them (before/after a change: `--gateway-bundle` a bundle of the
 * older commit, `--compare-bundle` the newer one).
 */
const compareBundle = flag("--compare-bundle");

type Via = "direct" | "gateway" | "nginx" | "naive";
type Scheme = "http" | "https";
type Tool = "wrk" | "undici";

interface CaseSpec {
  id: string;
  label: string;
  via: Via;
  scheme: Scheme;
  method: "GET" | "POST";
  tool: Tool;
  concurrency: readonly number[];
}

interface CaseResult {
  case: string;
  connections: number;
  tool: Tool;
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
  errors: number;
  /** Highest gateway RSS sampled during this case. */
  gatewayRssMb: number;
  /** CPU time (user + system) of the proxy under test per request: gateway or nginx worker. */
  proxyCpuUsPerRequest: number | null;
  /** The machine during the measured window: steal, other work, a Node proxy's threads. */
  window: WindowFacts;
}

const httpTool: Tool = useWrk ? "wrk" : "undici";
const ALL_CASES: CaseSpec[] = [
  {
    id: "direct-http",
    label: "direct HTTP",
    via: "direct",
    scheme: "http",
    method: "GET",
    tool: httpTool,
    concurrency: CONCURRENCY,
  },
  {
    id: "nginx-http",
    label: "nginx injector HTTP",
    via: "nginx",
    scheme: "http",
    method: "GET",
    tool: httpTool,
    concurrency: CONCURRENCY,
  },
  {
    id: "naive-http",
    label: "plain Node forwarder HTTP",
    via: "naive",
    scheme: "http",
    method: "GET",
    tool: httpTool,
    concurrency: CONCURRENCY,
  },
  {
    id: "gateway-http",
    label: "gateway HTTP",
    via: "gateway",
    scheme: "http",
    method: "GET",
    tool: httpTool,
    concurrency: CONCURRENCY,
  },
  {
    id: "direct-https",
    label: "direct HTTPS",
    via: "direct",
    scheme: "https",
    method: "GET",
    tool: "undici",
    concurrency: CONCURRENCY,
  },
  {
    id: "gateway-https",
    label: "gateway HTTPS (intercepted)",
    via: "gateway",
    scheme: "https",
    method: "GET",
    tool: "undici",
    concurrency: CONCURRENCY,
  },
  {
    id: "direct-http-post",
    label: "direct HTTP POST",
    via: "direct",
    scheme: "http",
    method: "POST",
    tool: httpTool,
    concurrency: [1],
  },
  {
    id: "gateway-http-post",
    label: "gateway HTTP POST",
    via: "gateway",
    scheme: "http",
    method: "POST",
    tool: httpTool,
    concurrency: [1],
  },
];
const CASES = ALL_CASES.filter(
  (c) => (useNginx || c.via !== "nginx") && (onlyCases === undefined || onlyCases.includes(c.id)),
);

// ---------------------------------------------------------------------------------------------
// Load generators

function parseLine(output: string, prefix: string): LoadResult {
  const line = output.split("\n").find((l) => l.startsWith(prefix));
  if (line === undefined) throw new Error(`no ${prefix} line in:\n${output}`);
  const value: unknown = JSON.parse(line.slice(prefix.length));
  const valid =
    typeof value === "object" &&
    value !== null &&
    ["requests", "durationUs", "errors", "p50Us", "p99Us", "meanUs", "maxUs"].every(
      (key) => key in value && typeof (value as Record<string, unknown>)[key] === "number",
    );
  if (!valid) throw new Error(`bad ${prefix} line: ${line}`);
  // Every field was checked to be a number just above.
  return value as LoadResult;
}

interface Request {
  /** What the client connects to. */
  connectUrl: string;
  /** Request target as sent (absolute-form through the gateway). */
  target: string;
  headers: Record<string, string>;
  method: "GET" | "POST";
  /** Tokens wrk rotates through, one per session (`--sessions`). */
  proxyAuthorizations?: readonly string[];
}

function wrkScript(dir: string, name: string, req: Request): string {
  const rotating = req.proxyAuthorizations ?? [];
  const lines = [
    `wrk.method = "${req.method}"`,
    `wrk.path = "${req.target}"`,
    ...Object.entries(req.headers).map(([k, v]) => `wrk.headers["${k}"] = "${v}"`),
    ...(req.method === "POST"
      ? [`wrk.body = '${POST_BODY}'`, `wrk.headers["Content-Type"] = "application/json"`]
      : []),
    // Several sessions: each request carries the next session's token.
    ...(rotating.length > 1
      ? [
          `local tokens = { ${rotating.map((t) => `"${t}"`).join(", ")} }`,
          "local turn = 0",
          "request = function()",
          "  turn = turn % #tokens + 1",
          '  wrk.headers["Proxy-Authorization"] = tokens[turn]',
          "  return wrk.format()",
          "end",
        ]
      : []),
    "done = function(summary, latency, requests)",
    "  local e = summary.errors",
    '  io.write(string.format(\'WRK_JSON {"requests":%d,"durationUs":%d,"errors":%d,"p50Us":%.2f,"p99Us":%.2f,"meanUs":%.2f,"maxUs":%.2f}\\n\',',
    "    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,",
    "    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))",
    "end",
  ];
  const file = join(dir, `${name}.lua`);
  writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

async function runWrk(
  dir: string,
  name: string,
  req: Request,
  connections: number,
  seconds: number,
) {
  const script = wrkScript(dir, name, req);
  const output = await runProcess("wrk", [
    "-t1",
    `-c${connections}`,
    `-d${seconds}s`,
    "--timeout",
    "5s",
    "-s",
    script,
    req.connectUrl,
  ]);
  return parseLine(output, "WRK_JSON ");
}

async function runUndici(spec: LoadSpec): Promise<LoadResult> {
  const output = await runProcess(process.execPath, [
    "--import",
    "tsx",
    join(here, "gateway-load.ts"),
    JSON.stringify(spec),
  ]);
  return parseLine(output, "LOAD_JSON ");
}

// ---------------------------------------------------------------------------------------------

interface Setup {
  dir: string;
  /** Route hosts as the session's plan names them: `127.0.0.1:<port>`, `localhost:<port>`. */
  httpHost: string;
  httpsHost: string;
  upstreamHttp: number;
  upstreamHttps: number;
  proxyPort: number;
  adminPort: number;
  nginxPort: number;
  naivePort: number;
  proxyAuthorization: string;
  /** One per session; the first is `proxyAuthorization`. */
  proxyAuthorizations: readonly string[];
  gatewayCaPem: string;
  upstreamCaPem: string;
}

/** Where origin-form requests go: a reverse proxy, or the upstream itself. */
function proxyPortFor(setup: Setup, via: Via): number {
  if (via === "nginx") return setup.nginxPort;
  if (via === "naive") return setup.naivePort;
  return setup.upstreamHttp;
}

function requestFor(setup: Setup, spec: CaseSpec): Request {
  const headers: Record<string, string> = {};
  if (spec.via === "gateway" && spec.scheme === "http") {
    headers["Proxy-Authorization"] = setup.proxyAuthorization;
    headers.Host = setup.httpHost;
    return {
      connectUrl: `http://127.0.0.1:${setup.proxyPort}`,
      target: `http://${setup.httpHost}${PATH}`,
      headers,
      method: spec.method,
      proxyAuthorizations: setup.proxyAuthorizations,
    };
  }
  const port = proxyPortFor(setup, spec.via);
  return { connectUrl: `http://127.0.0.1:${port}`, target: PATH, headers, method: spec.method };
}

function undiciSpec(
  setup: Setup,
  spec: CaseSpec,
  connections: number,
  warmSeconds: number,
): LoadSpec {
  const timing = { connections, warmupMs: warmSeconds * 1000, durationMs: durationS * 1000 };
  const body =
    spec.method === "POST"
      ? { body: POST_BODY, headers: { "content-type": "application/json" } }
      : {};
  if (spec.scheme === "https") {
    if (spec.via === "gateway") {
      return {
        url: `https://${setup.httpsHost}${PATH}`,
        method: spec.method,
        ca: setup.gatewayCaPem,
        proxy: {
          uri: `http://127.0.0.1:${setup.proxyPort}`,
          token: setup.proxyAuthorization,
          tunnel: true,
        },
        ...body,
        ...timing,
      };
    }
    return {
      url: `https://127.0.0.1:${setup.upstreamHttps}${PATH}`,
      servername: "localhost",
      method: spec.method,
      ca: setup.upstreamCaPem,
      ...body,
      ...timing,
    };
  }
  if (spec.via === "gateway") {
    return {
      url: `http://${setup.httpHost}${PATH}`,
      method: spec.method,
      proxy: {
        uri: `http://127.0.0.1:${setup.proxyPort}`,
        token: setup.proxyAuthorization,
        tunnel: false,
      },
      ...body,
      ...timing,
    };
  }
  const port = proxyPortFor(setup, spec.via);
  return { url: `http://127.0.0.1:${port}${PATH}`, method: spec.method, ...body, ...timing };
}

/**
 * The load result, the CPU milliseconds `proxyPids` spent during the measured window, and what
 * else the machine did meanwhile (`gateway-window.ts`; `nodeProxyPid`: a Node proxy's threads
 * are told apart).
 */
async function runCase(
  setup: Setup,
  spec: CaseSpec,
  connections: number,
  proxyPids: readonly number[],
  nodeProxyPid?: number,
): Promise<{ load: LoadResult; proxyCpuMs: number; window: WindowFacts }> {
  const proxy = `${spec.via}:${spec.via === "gateway" ? setup.proxyPort : ""}`;
  const warmSeconds = warmedUp.has(proxy) ? warmupS : firstWarmupS;
  warmedUp.add(proxy);
  if (spec.tool === "wrk") {
    const req = requestFor(setup, spec);
    const name = `${spec.id}-c${connections}`;
    // Unmeasured warm-up at the same concurrency: connections opened, pools grown, code optimized.
    await runWrk(setup.dir, name, req, connections, warmSeconds);
    const probe = startWindow(nodeProxyPid);
    const before = cpuMs(proxyPids);
    const load = await runWrk(setup.dir, name, req, connections, durationS);
    const proxyCpuMs = cpuMs(proxyPids) - before;
    const window = probe.end(load.requests);
    window.crossCpuRoundTripNs = await crossCpuRoundTripNs();
    return { load, proxyCpuMs, window };
  }
  const probe = startWindow(nodeProxyPid);
  const before = cpuMs(proxyPids);
  const load = await runUndici(undiciSpec(setup, spec, connections, warmSeconds));
  // The warm-up runs in the same process: its share of the proxy's CPU time is taken out.
  const proxyCpuMs = ((cpuMs(proxyPids) - before) * durationS) / (durationS + warmSeconds);
  const window = probe.end((load.requests * (durationS + warmSeconds)) / durationS);
  window.crossCpuRoundTripNs = await crossCpuRoundTripNs();
  return { load, proxyCpuMs, window };
}

/** The window's facts in one short column: steal, other work, a Node proxy's threads. */
function windowNote(window: WindowFacts): string {
  const threads =
    window.mainThreadUsPerRequest === null || window.otherThreadsUsPerRequest === null
      ? ""
      : `, main/bg ${fmt(window.mainThreadUsPerRequest, 1)}/${fmt(window.otherThreadsUsPerRequest, 1)} µs` +
        `, kernel ${fmt(window.systemUsPerRequest ?? 0, 1)} µs` +
        `, per req: ${fmt(window.minorFaultsPerRequest ?? 0, 2)} faults` +
        ` ${fmt(window.sleepsPerRequest ?? 0, 2)} sleeps ${fmt(window.preemptionsPerRequest ?? 0, 2)} preempted`;
  return (
    `  [steal ${fmt(window.stealPercent, 1)} %, other ${fmt(window.otherBusyPercent, 0)} %` +
    `, control plane ${fmt(window.controlPlaneBusyPercent, 0)} %` +
    `, idle ${fmt(window.machineIdlePercent, 0)} %, probe ${fmt(window.speedProbeUs, 0)} µs` +
    (window.cpuSpeedProbeUs.length > 0
      ? ` (per vCPU ${window.cpuSpeedProbeUs.map((us) => fmt(us, 0)).join("/")})`
      : "") +
    `, x-CPU ${fmt(window.crossCpuRoundTripNs ?? Number.NaN, 0)} ns` +
    `, ${fmt(window.ipisPerRequest, 2)} IPIs/req${threads}]`
  );
}

// ---------------------------------------------------------------------------------------------

function nginxConfig(dir: string, listenPort: number, upstreamPort: number): string {
  return `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/nginx-tmp/body;
  proxy_temp_path ${dir}/nginx-tmp/proxy;
  fastcgi_temp_path ${dir}/nginx-tmp/fastcgi;
  uwsgi_temp_path ${dir}/nginx-tmp/uwsgi;
  scgi_temp_path ${dir}/nginx-tmp/scgi;
  keepalive_timeout 120s;
  keepalive_requests 10000000;
  tcp_nodelay on;
  upstream bench_upstream {
    server 127.0.0.1:${upstreamPort};
    keepalive 128;
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:${listenPort};
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host 127.0.0.1:${upstreamPort};
      proxy_set_header Authorization "Bearer ${SECRET}";
    }
  }
}
`;
}

async function measureLeafIssuance(gatewayCa: { certPem: string; keyPem: string }) {
  const clock = { now: () => new Date() };
  const contexts = createLeafContexts({
    issue: await createLeafIssuer(gatewayCa, { clock }),
    clock,
  });
  // The first issuance pays one-time lazy initialization; measured hosts start after it.
  await contexts.secureContextFor("warm.bench.test");
  const issueMs: number[] = [];
  for (let i = 0; i < LEAF_HOSTS; i++) {
    const started = performance.now();
    await contexts.secureContextFor(`leaf-${i}.bench.test`);
    issueMs.push(performance.now() - started);
  }
  const lookups = 100_000;
  const started = performance.now();
  for (let i = 0; i < lookups; i++) contexts.secureContextFor(`leaf-${i % LEAF_HOSTS}.bench.test`);
  const cachedUs = ((performance.now() - started) * 1000) / lookups;
  return {
    hosts: LEAF_HOSTS,
    meanMs: issueMs.reduce((a, b) => a + b, 0) / issueMs.length,
    p50Ms: percentile(issueMs, 50),
    maxMs: Math.max(...issueMs),
    cachedLookupUs: cachedUs,
  };
}

interface PlanCurvePoint {
  round: number;
  plans: number;
  sessions: number;
  /** Seconds to send each session of the group its first request of the round. */
  warmSeconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  gatewayCpuUsPerRequest: number;
  /** Highest gateway RSS sampled during the point's load. */
  gatewayRssMb: number;
  /** Internal API requests the gateway made during the point's load (sessions warmed before). */
  planLookups: number;
  credentialResolutions: number;
  /** Distinct routes (one per plan) that had traffic since the gateway started. */
  routesSeen: number;
  metricsLines: number;
  metricsBytes: number;
}

async function runPlanCurve(
  setup: Setup,
  cp: BenchControlPlane,
  gatewayPid: number,
  adminPort: number,
): Promise<PlanCurvePoint[]> {
  if (!useWrk) throw new Error("--plan-curve needs wrk");
  const connections = onlyConnections?.[0] ?? 16;
  const groups = cp.groups.map((group) => ({
    plans: group.plans.length,
    proxyAuthorizations: group.tokens.map(
      (token) => `Basic ${Buffer.from(`session:${token}`).toString("base64")}`,
    ),
  }));
  console.log(
    `plan curve: ${groups.map((g) => g.plans).join(", ")} plans, ${SESSIONS} sessions each, ` +
      `${ROUNDS} round${ROUNDS === 1 ? "" : "s"} of ${durationS} s (+${warmupS} s warm-up) at ${connections} connections`,
  );
  const points: PlanCurvePoint[] = [];
  const routesSeen = new Set<number>();
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [at, group] of groups.entries()) {
      await cp.refreshCredentials();
      // The events reach the gateway over its event stream within milliseconds.
      await new Promise((resolveWait) => setTimeout(resolveWait, 1000));
      const warm = await warmSessions(setup, group.proxyAuthorizations);
      routesSeen.add(at);
      const req: Request = {
        connectUrl: `http://127.0.0.1:${setup.proxyPort}`,
        target: `http://${setup.httpHost}${PATH}`,
        headers: {
          "Proxy-Authorization": group.proxyAuthorizations[0] ?? "",
          Host: setup.httpHost,
        },
        method: "GET",
        proxyAuthorizations: group.proxyAuthorizations,
      };
      const name = `plans-${group.plans}`;
      await runWrk(setup.dir, name, req, connections, warmupS);
      const served = cp.served();
      const cpuBefore = cpuMs([gatewayPid]);
      let peakRssMb = rssMb(gatewayPid);
      const sampler = setInterval(() => {
        peakRssMb = Math.max(peakRssMb, rssMb(gatewayPid));
      }, 100);
      const load = await runWrk(setup.dir, name, req, connections, durationS);
      clearInterval(sampler);
      const cpuSpentMs = cpuMs([gatewayPid]) - cpuBefore;
      const servedAfter = cp.served();
      const metricsText = await fetch(`http://127.0.0.1:${adminPort}/metrics`).then((r) =>
        r.text(),
      );
      const point: PlanCurvePoint = {
        round,
        plans: group.plans,
        sessions: group.proxyAuthorizations.length,
        warmSeconds: warm.seconds,
        rps: load.requests / (load.durationUs / 1e6),
        p50Ms: load.p50Us / 1000,
        p99Ms: load.p99Us / 1000,
        errors: load.errors,
        gatewayCpuUsPerRequest: (cpuSpentMs * 1000) / Math.max(1, load.requests),
        gatewayRssMb: peakRssMb,
        planLookups: servedAfter.plans - served.plans,
        credentialResolutions: servedAfter.credentials - served.credentials,
        routesSeen: [...routesSeen].reduce((total, i) => total + (groups[i]?.plans ?? 0), 0),
        metricsLines: metricsText.split("\n").filter((line) => line !== "").length,
        metricsBytes: Buffer.byteLength(metricsText),
      };
      points.push(point);
      console.log(
        `  round ${round}  ${String(point.plans).padStart(5)} plans  ${fmt(point.rps, 0).padStart(7)} req/s  ` +
          `p50 ${fmt(point.p50Ms, 3)} ms  p99 ${fmt(point.p99Ms, 3)} ms  CPU ${fmt(point.gatewayCpuUsPerRequest, 1)} µs/req  ` +
          `RSS ${fmt(point.gatewayRssMb, 1)} MB  plan lookups ${point.planLookups}  ` +
          `credential resolutions ${point.credentialResolutions}  /metrics ${point.metricsLines} lines` +
          (point.errors > 0 ? `  ERRORS ${point.errors}` : ""),
      );
    }
  }
  return points;
}

function reportPlanCurve(machine: ReturnType<typeof machineFacts>, points: PlanCurvePoint[]) {
  const single = (round: number) =>
    points.find((p) => p.round === round && p.plans === Math.min(...points.map((q) => q.plans)));
  console.log(
    `\nGateway plan curve — ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}`,
  );
  console.log(
    `${SESSIONS} sessions per point, ${PLAN_ROUTES} routes per plan; ratios against the fewest-plans point of the same round\n`,
  );
  console.log(
    `${"round".padEnd(6)}${"plans".padStart(6)}${"req/s".padStart(9)}${"ratio".padStart(7)}${"p50".padStart(8)}${"p99".padStart(8)}${"p99 ratio".padStart(10)}${"CPU µs".padStart(8)}${"RSS MB".padStart(8)}${"plan GETs".padStart(10)}${"cred.".padStart(7)}${"routes".padStart(8)}${"/metrics".padStart(10)}${"KiB".padStart(8)}`,
  );
  const rows = points.map((p) => {
    const base = single(p.round);
    const ratio = base && base.rps > 0 ? p.rps / base.rps : Number.NaN;
    const p99Ratio = base && base.p99Ms > 0 ? p.p99Ms / base.p99Ms : Number.NaN;
    console.log(
      `${String(p.round).padEnd(6)}${String(p.plans).padStart(6)}${fmt(p.rps, 0).padStart(9)}${fmt(ratio).padStart(7)}${fmt(p.p50Ms, 2).padStart(8)}${fmt(p.p99Ms, 2).padStart(8)}${fmt(p99Ratio).padStart(10)}${fmt(p.gatewayCpuUsPerRequest, 1).padStart(8)}${fmt(p.gatewayRssMb, 1).padStart(8)}${String(p.planLookups).padStart(10)}${String(p.credentialResolutions).padStart(7)}${String(p.routesSeen).padStart(8)}${String(p.metricsLines).padStart(10)}${fmt(p.metricsBytes / 1024, 1).padStart(8)}`,
    );
    return { ...p, rpsRatioToSingle: ratio, p99RatioToSingle: p99Ratio };
  });
  writeJson(jsonFile, {
    machine,
    settings: {
      durationS,
      warmupS,
      rounds: ROUNDS,
      sessionsPerPoint: SESSIONS,
      planRoutes: PLAN_ROUTES,
      connections: onlyConnections?.[0] ?? 16,
      loadGenerator: "wrk 1 thread, rotating through the point's session tokens",
      gatewayBuild: gatewayBundle ?? gatewayBuild,
    },
    points: rows,
  });
}

const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

function metricValue(text: string, name: string, labels: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

const fmt = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");

async function main() {
  const machine = machineFacts(`pnpm bench:gateway ${process.argv.slice(2).join(" ")}`.trim());
  const dir = await mkdtemp(join(tmpdir(), "keyway-bench-gateway-"));
  await chmod(dir, 0o755);
  const children: ChildProcess[] = [];
  let cp: BenchControlPlane | undefined;
  try {
    const upstreamCa = await createTestCa({ commonName: "Bench upstream CA" });
    const gatewayCa = await createTestCa({ commonName: "Bench gateway CA" });
    const upstreamLeaf = await upstreamCa.issueLeaf({ hosts: ["localhost", "127.0.0.1"] });
    const files = {
      upstreamCert: join(dir, "upstream-cert.pem"),
      upstreamKey: join(dir, "upstream-key.pem"),
      upstreamCa: join(dir, "upstream-ca.pem"),
      gatewayCa: join(dir, "gateway-ca.pem"),
      gatewayCaKey: join(dir, "gateway-ca-key.pem"),
      gatewayKey: join(dir, "gateway-key.json"),
      config: join(dir, "keyway.toml"),
    };
    writeFileSync(files.upstreamCert, upstreamLeaf.certPem);
    writeFileSync(files.upstreamKey, upstreamLeaf.keyPem);
    writeFileSync(files.upstreamCa, upstreamCa.certPem);
    writeFileSync(files.gatewayCa, gatewayCa.certPem);
    writeFileSync(files.gatewayCaKey, gatewayCa.keyPem);

    const [upstreamHttp, upstreamHttps, proxyPort, adminPort, nginxPort, naivePort] =
      await Promise.all([
        getFreePort(),
        getFreePort(),
        getFreePort(),
        getFreePort(),
        getFreePort(),
        getFreePort(),
      ]);
    const httpHost = `127.0.0.1:${upstreamHttp}`;
    const httpsHost = `localhost:${upstreamHttps}`;

    // The real control plane, with the session's plan: the two benchmarked routes among
    // unrelated ones (one `http-api` binding each, the base URL's path as the route's prefix).
    cp = await startBenchControlPlane({
      baseUrls: [
        `http://${httpHost}/v1`,
        `https://${httpsHost}/v1`,
        ...Array.from({ length: OTHER_ROUTES }, (_, i) => `https://svc-${i}.other.test/v${i}`),
      ],
      secret: SECRET,
      tokenTtlSeconds: 3 * 3600,
      groups:
        PLAN_CURVE === undefined
          ? [{ sessions: SESSIONS, plans: DISTINCT_PLANS ? SESSIONS : 1 }]
          : PLAN_CURVE.map((plans) => ({ sessions: SESSIONS, plans })),
    });
    // The benchmarked routes' ids in every plan (before metrics were labelled by upstream, they
    // counted requests by route id).
    const routeIdsFor = (host: string) =>
      (cp?.plans ?? []).flatMap((plan) =>
        plan.routes.filter((r) => r.match.hosts.includes(host)).map((r) => r.id),
      );
    const httpRouteIds = routeIdsFor(httpHost);
    const httpsRouteIds = routeIdsFor(httpsHost);
    if (httpRouteIds.length !== cp.plans.length || httpsRouteIds.length !== cp.plans.length) {
      throw new Error("no routes compiled");
    }
    writeFileSync(files.gatewayKey, JSON.stringify(cp.gatewayKey.privateJwk));

    // Leaf issuance first, while nothing else runs.
    const leaf = await measureLeafIssuance(gatewayCa);

    const upstream = spawnNode(
      [
        "--import",
        "tsx",
        join(here, "gateway-upstream.ts"),
        String(upstreamHttp),
        String(upstreamHttps),
        files.upstreamCert,
        files.upstreamKey,
      ],
      {},
    );
    children.push(upstream.child);
    await waitFor("upstream", async () => upstream.output().includes("ready"), upstream);
    const naive = spawnNode(
      [
        "--import",
        "tsx",
        join(here, "gateway-naive-forwarder.ts"),
        String(naivePort),
        `http://127.0.0.1:${upstreamHttp}`,
        SECRET,
      ],
      {},
    );
    children.push(naive.child);
    await waitFor("plain Node forwarder", async () => naive.output().includes("ready"), naive);

    const proxyAuthorizations = cp.tokens.map(
      (token) => `Basic ${Buffer.from(`session:${token}`).toString("base64")}`,
    );
    const proxyAuthorization = proxyAuthorizations[0] ?? "";

    writeFileSync(
      files.config,
      benchGatewayConfig(cp, {
        proxyPort,
        adminPort,
        caCertPath: files.gatewayCa,
        caKeyPath: files.gatewayCaKey,
        gatewayKeyPath: files.gatewayKey,
      }),
    );
    if (profileDir) mkdirSync(profileDir, { recursive: true });
    const gatewayEntry =
      gatewayBundle !== undefined
        ? [resolve(gatewayBundle)]
        : gatewayBuild === "bundle"
          ? [await buildService("data-plane-gateway")]
          : ["--import", "tsx", GATEWAY_MAIN];
    // As deployed: the gateway's own node flags (young-generation cap), then any the run adds.
    const deployedFlags = SERVICE_NODE_FLAGS["data-plane-gateway"];
    const gatewayLog = logFile === "" ? join(dir, "gateway.log") : logFile;
    const logFd = openSync(gatewayLog, "w");
    const gateway = spawnNode(
      [
        ...(profileDir ? ["--cpu-prof", "--cpu-prof-dir", resolve(profileDir)] : []),
        ...(measureAllocation ? ["--trace-gc-nvp"] : []),
        ...deployedFlags,
        ...gatewayNodeFlags,
        ...gatewayEntry,
      ],
      {
        // The route's HTTPS upstream presents a certificate from the bench's own CA.
        env: { KEYWAY_CONFIG: files.config, NODE_EXTRA_CA_CERTS: files.upstreamCa },
        stdoutFd: logFd,
      },
    );
    closeSync(logFd);
    children.push(gateway.child);
    const gatewayPid = gateway.child.pid ?? 0;
    await waitFor("gateway", () => isReady(`http://127.0.0.1:${adminPort}`), gateway);
    let compared: { child: ChildProcess; proxyPort: number } | undefined;
    if (compareBundle !== undefined) {
      const [comparedProxyPort, comparedAdminPort] = await Promise.all([
        getFreePort(),
        getFreePort(),
      ]);
      const comparedConfig = join(dir, "keyway-compared.toml");
      writeFileSync(
        comparedConfig,
        benchGatewayConfig(cp, {
          proxyPort: comparedProxyPort,
          adminPort: comparedAdminPort,
          caCertPath: files.gatewayCa,
          caKeyPath: files.gatewayCaKey,
          gatewayKeyPath: files.gatewayKey,
        }),
      );
      // With `--log FILE`, the second gateway's lines (and diagnostics) go to `FILE.compared`.
      const comparedFd = openSync(
        gatewayLog === "/dev/null" ? gatewayLog : `${gatewayLog}.compared`,
        "w",
      );
      const second = spawnNode([...deployedFlags, ...gatewayNodeFlags, resolve(compareBundle)], {
        env: { KEYWAY_CONFIG: comparedConfig, NODE_EXTRA_CA_CERTS: files.upstreamCa },
        stdoutFd: comparedFd,
      });
      closeSync(comparedFd);
      children.push(second.child);
      await waitFor(
        "compared gateway",
        () => isReady(`http://127.0.0.1:${comparedAdminPort}`),
        second,
      );
      compared = { child: second.child, proxyPort: comparedProxyPort };
    }

    let nginx: Spawned | undefined;
    /** nginx's worker processes, which do the proxying. */
    let nginxPids: number[] = [];
    if (useNginx) {
      mkdirSync(join(dir, "nginx-tmp"), { recursive: true, mode: 0o777 });
      writeFileSync(join(dir, "nginx.conf"), nginxConfig(dir, nginxPort, upstreamHttp));
      const child = spawn(
        "nginx",
        [
          "-p",
          dir,
          "-e",
          join(dir, "nginx-error.log"),
          "-c",
          join(dir, "nginx.conf"),
          "-g",
          "daemon off;",
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      let output = "";
      child.stderr.on("data", (chunk: Buffer) => {
        output += chunk.toString("utf8");
      });
      nginx = { child, output: () => output };
      children.push(child);
      await waitFor("nginx", () => canConnect(nginxPort), nginx);
      nginxPids = childPids(child.pid ?? 0);
    }

    const setup: Setup = {
      dir,
      httpHost,
      httpsHost,
      upstreamHttp,
      upstreamHttps,
      proxyPort,
      adminPort,
      nginxPort,
      naivePort,
      proxyAuthorization,
      proxyAuthorizations,
      gatewayCaPem: gatewayCa.certPem,
      upstreamCaPem: upstreamCa.certPem,
    };

    // Before loading: every path reaches the upstream with the injected credential (this also
    // verifies the token, loads the plan and fills the credential cache).
    const expected = createHash("sha256").update(`Bearer ${SECRET}`).digest("hex");
    const checks: [string, () => Promise<unknown>][] = [
      [
        "gateway HTTP",
        () =>
          fetchJson(
            `http://${httpHost}${CHECK_PATH}`,
            new ProxyAgent({
              uri: `http://127.0.0.1:${proxyPort}`,
              token: proxyAuthorization,
              proxyTunnel: false,
            }),
          ),
      ],
      [
        "gateway HTTPS",
        () =>
          fetchJson(
            `https://${httpsHost}${CHECK_PATH}`,
            new ProxyAgent({
              uri: `http://127.0.0.1:${proxyPort}`,
              token: proxyAuthorization,
              requestTls: { ca: gatewayCa.certPem },
            }),
          ),
      ],
      ["plain Node forwarder", () => fetchJson(`http://127.0.0.1:${naivePort}${CHECK_PATH}`)],
      ...(useNginx
        ? [
            ["nginx", () => fetchJson(`http://127.0.0.1:${nginxPort}${CHECK_PATH}`)] as [
              string,
              () => Promise<unknown>,
            ],
          ]
        : []),
    ];
    for (const [name, check] of checks) {
      const body = await check();
      const seen =
        typeof body === "object" && body !== null && "authorizationSha256" in body
          ? body.authorizationSha256
          : null;
      if (seen !== expected)
        throw new Error(`${name}: the upstream did not receive the credential`);
    }

    if (PLAN_CURVE !== undefined) {
      const points = await runPlanCurve(setup, cp, gatewayPid, adminPort);
      await stop(gateway.child);
      reportPlanCurve(machine, points);
      return;
    }

    if (compared !== undefined) {
      await compareGateways(setup, [
        { label: "A", bundle: gatewayBundle ?? "built", pid: gatewayPid, proxyPort },
        {
          label: "B",
          bundle: compareBundle ?? "",
          pid: compared.child.pid ?? 0,
          proxyPort: compared.proxyPort,
        },
      ]);
      return;
    }

    const warm = await warmSessions(setup, setup.proxyAuthorizations);
    console.log(
      `${SESSIONS} session${SESSIONS === 1 ? "" : "s"} on ${cp.plans.length} plan${cp.plans.length === 1 ? "" : "s"}: ` +
        `first request of each in ${fmt(warm.seconds, 1)} s`,
    );
    const servedBefore = cp.served();

    // RSS sampled throughout the load, per case.
    let caseRssMb = 0;
    // Started, token verified, plan and credentials cached, nothing under load yet.
    const idleRssMb = rssMb(gatewayPid);
    let maxRssMb = idleRssMb;
    const sampler = setInterval(() => {
      const now = rssMb(gatewayPid);
      caseRssMb = Math.max(caseRssMb, now);
      maxRssMb = Math.max(maxRssMb, now);
    }, 100);

    const results: CaseResult[] = [];
    const order = CONCURRENCY.flatMap((c) =>
      onlyConnections === undefined || onlyConnections.includes(c)
        ? CASES.filter((s) => s.concurrency.includes(c)).map((s) => [s, c] as const)
        : [],
    );
    console.log(
      `gateway benchmark: ${order.length} runs of ${durationS} s (+${warmupS} s warm-up, ${firstWarmupS} s before a proxy's first), ` +
        `load: ${useWrk ? "wrk (HTTP), undici (HTTPS)" : "undici"}, nginx: ${useNginx ? "yes" : "not installed"}`,
    );
    for (const [spec, connections] of order) {
      caseRssMb = rssMb(gatewayPid);
      const proxyPids =
        spec.via === "gateway"
          ? [gatewayPid]
          : spec.via === "nginx"
            ? nginxPids
            : spec.via === "naive"
              ? [naive.child.pid ?? 0]
              : [];
      const nodeProxyPid =
        spec.via === "gateway" ? gatewayPid : spec.via === "naive" ? naive.child.pid : undefined;
      const { load, proxyCpuMs, window } = await runCase(
        setup,
        spec,
        connections,
        proxyPids,
        nodeProxyPid,
      );
      const result: CaseResult = {
        case: spec.id,
        connections,
        tool: spec.tool,
        requests: load.requests,
        rps: load.requests / (load.durationUs / 1e6),
        p50Ms: load.p50Us / 1000,
        p99Ms: load.p99Us / 1000,
        meanMs: load.meanUs / 1000,
        maxMs: load.maxUs / 1000,
        errors: load.errors,
        gatewayRssMb: caseRssMb,
        proxyCpuUsPerRequest:
          proxyPids.length === 0 ? null : (proxyCpuMs * 1000) / Math.max(1, load.requests),
        window,
      };
      results.push(result);
      console.log(
        `  ${spec.label.padEnd(28)} c=${String(connections).padEnd(3)} ${fmt(result.rps, 0).padStart(7)} req/s  ` +
          `p50 ${fmt(result.p50Ms, 3)} ms  p99 ${fmt(result.p99Ms, 3)} ms` +
          (result.proxyCpuUsPerRequest === null
            ? ""
            : `  proxy CPU ${fmt(result.proxyCpuUsPerRequest, 1)} µs/req`) +
          (result.errors > 0 ? `  ERRORS ${result.errors}` : "") +
          windowNote(window),
      );
    }
    clearInterval(sampler);
    const servedAfter = cp.served();
    /** Internal API requests the gateway made while the cases ran (all sessions warmed before). */
    const controlPlaneDuringCases = {
      planLookups: servedAfter.plans - servedBefore.plans,
      credentialResolutions: servedAfter.credentials - servedBefore.credentials,
    };

    const metricsText = await fetch(`http://127.0.0.1:${adminPort}/metrics`).then((r) => r.text());
    /** 200s counted for a route: by upstream origin, or (before) by each plan's route id. */
    const requestsOk = (origin: string, routeIds: readonly string[]) =>
      metricValue(
        metricsText,
        "keyway_gateway_requests_total",
        `upstream="${origin}",status="200"`,
      ) +
      sum(
        routeIds.map((id) =>
          metricValue(metricsText, "keyway_gateway_requests_total", `route="${id}",status="200"`),
        ),
      );
    const gatewayMetrics = {
      /** Every request the gateway counted, by its labels and status. */
      requestLines: metricsText
        .split("\n")
        .filter((line) => line.startsWith("keyway_gateway_requests_total{")),
      /** Size of the `/metrics` exposition at the end of the run. */
      exposition: {
        bytes: Buffer.byteLength(metricsText),
        lines: metricsText.split("\n").filter((line) => line !== "").length,
      },
      requestsHttpOk: requestsOk(`http://${httpHost}`, httpRouteIds),
      requestsHttpsOk: requestsOk(`https://${httpsHost}`, httpsRouteIds),
      credentialCacheHits: metricValue(
        metricsText,
        "keyway_gateway_credential_cache_total",
        'result="hit"',
      ),
      credentialCacheMisses: metricValue(
        metricsText,
        "keyway_gateway_credential_cache_total",
        'result="miss"',
      ),
    };
    const hwmMb = rssMb(gatewayPid, "VmHWM");

    await stop(gateway.child);
    const served = gatewayMetrics.requestsHttpOk + gatewayMetrics.requestsHttpsOk;
    const allocatedBytesPerRequest = measureAllocation
      ? allocatedBytes(readFileSync(gatewayLog, "utf8")) / Math.max(1, served)
      : undefined;
    let profile: ProfileSummary | undefined;
    if (profileDir) {
      // `CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile`: thread 0 is the event loop (the
      // others are tsx's module loader thread, idle once the gateway has started).
      const mainThread = readdirSync(profileDir).find((f) => f.includes(`.${gatewayPid}.0.`));
      if (mainThread) profile = summarizeCpuProfile(join(profileDir, mainThread), 30);
    }

    report({
      machine,
      results,
      leaf,
      gatewayMetrics,
      controlPlaneDuringCases,
      plans: cp.plans.length,
      warmSeconds: warm.seconds,
      idleRssMb,
      maxRssMb: Math.max(maxRssMb, hwmMb),
      allocatedBytesPerRequest,
      profile,
    });
  } finally {
    for (const child of children.reverse())
      await stop(child, child.spawnfile === "nginx" ? "SIGQUIT" : "SIGTERM");
    await cp?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

interface ComparedGateway {
  label: string;
  bundle: string;
  pid: number;
  proxyPort: number;
}

/** `--compare-bundle`: plain HTTP through each gateway in turn, round by round. */
async function compareGateways(setup: Setup, gateways: readonly ComparedGateway[]): Promise<void> {
  const spec = ALL_CASES.find((c) => c.id === "gateway-http");
  if (spec === undefined) throw new Error("no gateway-http case");
  const connections = onlyConnections?.[0] ?? 16;
  for (const gateway of gateways) {
    console.log(`${gateway.label}: ${gateway.bundle}`);
    await warmSessions({ ...setup, proxyPort: gateway.proxyPort }, setup.proxyAuthorizations);
  }
  const cpu = new Map<string, number[]>(gateways.map((g) => [g.label, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 === 1 ? gateways : [...gateways].reverse();
    for (const gateway of order) {
      const { load, proxyCpuMs, window } = await runCase(
        { ...setup, proxyPort: gateway.proxyPort },
        spec,
        connections,
        [gateway.pid],
        gateway.pid,
      );
      const us = (proxyCpuMs * 1000) / Math.max(1, load.requests);
      cpu.get(gateway.label)?.push(us);
      console.log(
        `  round ${round} ${gateway.label}  ${fmt(load.requests / (load.durationUs / 1e6), 0).padStart(7)} req/s  ` +
          `CPU ${fmt(us, 1)} µs/req  RSS ${fmt(rssMb(gateway.pid), 1)} MB` +
          (load.errors > 0 ? `  ERRORS ${load.errors}` : "") +
          windowNote(window),
      );
    }
  }
  const [a, b] = gateways.map((g) => cpu.get(g.label) ?? []);
  if (a === undefined || b === undefined) return;
  const ratios = b.map((value, i) => value / (a[i] ?? Number.NaN));
  console.log(
    `CPU µs/req median: A ${fmt(percentile(a, 50), 1)}, B ${fmt(percentile(b, 50), 1)}; ` +
      `B/A per round ${ratios.map((r) => fmt(r, 3)).join(" ")}, median ${fmt(percentile(ratios, 50), 3)}`,
  );
}

/**
 * One plain-HTTP request per session through the gateway, 16 at a time, before any case: each
 * session's token is verified, its liveness confirmed, its plan loaded and its route's credential
 * resolved, as for a sandbox that has been running a while.
 */
async function warmSessions(
  setup: Setup,
  proxyAuthorizations: readonly string[],
): Promise<{ seconds: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const started = performance.now();
  let next = 0;
  const one = (proxyAuthorization: string) =>
    new Promise<void>((resolveOne, reject) => {
      const req = httpRequest(
        {
          agent,
          host: "127.0.0.1",
          port: setup.proxyPort,
          path: `http://${setup.httpHost}${CHECK_PATH}`,
          headers: { host: setup.httpHost, "proxy-authorization": proxyAuthorization },
        },
        (res) => {
          res.resume();
          res.once("end", () =>
            res.statusCode === 200
              ? resolveOne()
              : reject(new Error(`warming a session: ${res.statusCode}`)),
          );
        },
      );
      req.once("error", reject);
      req.end();
    });
  const worker = async () => {
    while (next < proxyAuthorizations.length) {
      await one(proxyAuthorizations[next++] ?? "");
    }
  };
  try {
    await Promise.all(Array.from({ length: 16 }, worker));
  } finally {
    agent.destroy();
  }
  return { seconds: (performance.now() - started) / 1000 };
}

async function fetchJson(url: string, dispatcher?: ProxyAgent): Promise<unknown> {
  const target = new URL(url);
  const response = await request(url, {
    ...(dispatcher ? { dispatcher } : {}),
    headers: { host: target.host },
  });
  const body: unknown = await response.body.json();
  await dispatcher?.close();
  if (response.statusCode !== 200)
    throw new Error(`${url}: ${response.statusCode} ${JSON.stringify(body)}`);
  return body;
}

interface Report {
  machine: ReturnType<typeof machineFacts>;
  results: CaseResult[];
  leaf: Awaited<ReturnType<typeof measureLeafIssuance>>;
  controlPlaneDuringCases: { planLookups: number; credentialResolutions: number };
  plans: number;
  warmSeconds: number;
  gatewayMetrics: {
    requestLines: string[];
    exposition: { bytes: number; lines: number };
    requestsHttpOk: number;
    requestsHttpsOk: number;
    credentialCacheHits: number;
    credentialCacheMisses: number;
  };
  idleRssMb: number;
  maxRssMb: number;
  allocatedBytesPerRequest: number | undefined;
  profile: ProfileSummary | undefined;
}

/** Sum of `allocated=` over `--trace-gc-nvp` lines: bytes allocated between collections. */
function allocatedBytes(log: string): number {
  let total = 0;
  for (const match of log.matchAll(/ pause=.* allocated=(\d+)/g)) total += Number(match[1]);
  return total;
}

function report({
  machine,
  results,
  leaf,
  gatewayMetrics,
  controlPlaneDuringCases,
  plans,
  warmSeconds,
  idleRssMb,
  maxRssMb,
  allocatedBytesPerRequest,
  profile,
}: Report) {
  const find = (id: string, c: number) => results.find((r) => r.case === id && r.connections === c);
  const ratio = (a: CaseResult | undefined, b: CaseResult | undefined) =>
    a && b && b.rps > 0 ? a.rps / b.rps : Number.NaN;

  console.log(`\nGateway benchmark — ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}`);
  console.log(`${durationS} s per run after ${warmupS} s warm-up; latency in ms\n`);
  console.log(
    `${"case".padEnd(30)}${"conns".padStart(6)}${"req/s".padStart(10)}${"p50".padStart(9)}${"p99".padStart(9)}${"CPU µs/req".padStart(12)}${"errors".padStart(8)}  tool`,
  );
  for (const r of results) {
    const label = ALL_CASES.find((c) => c.id === r.case)?.label ?? r.case;
    console.log(
      `${label.padEnd(30)}${String(r.connections).padStart(6)}${fmt(r.rps, 0).padStart(10)}${fmt(r.p50Ms, 3).padStart(9)}${fmt(r.p99Ms, 3).padStart(9)}${(r.proxyCpuUsPerRequest === null ? "" : fmt(r.proxyCpuUsPerRequest, 1)).padStart(12)}${String(r.errors).padStart(8)}  ${r.tool}`,
    );
  }

  // Throughput ratios by concurrency: [numerator case, denominator case].
  const ratioCases = {
    gatewayOverDirectHttp: ["gateway-http", "direct-http"],
    gatewayOverNginxHttp: ["gateway-http", "nginx-http"],
    gatewayOverNaiveHttp: ["gateway-http", "naive-http"],
    nginxOverDirectHttp: ["nginx-http", "direct-http"],
    naiveOverDirectHttp: ["naive-http", "direct-http"],
    naiveOverNginxHttp: ["naive-http", "nginx-http"],
    gatewayOverDirectHttps: ["gateway-https", "direct-https"],
  } as const;
  const ratios: Record<string, Record<string, number>> = {};
  for (const [name, [top, bottom]] of Object.entries(ratioCases)) {
    const byC: Record<string, number> = {};
    for (const c of CONCURRENCY) byC[c] = ratio(find(top, c), find(bottom, c));
    ratios[name] = byC;
  }
  const g1 = find("gateway-http", 1);
  const d1 = find("direct-http", 1);
  const gp = find("gateway-http-post", 1);
  const dp = find("direct-http-post", 1);
  const added = {
    p50Ms: g1 && d1 ? g1.p50Ms - d1.p50Ms : Number.NaN,
    p99Ms: g1 && d1 ? g1.p99Ms - d1.p99Ms : Number.NaN,
    postP50Ms: gp && dp ? gp.p50Ms - dp.p50Ms : Number.NaN,
    postP99Ms: gp && dp ? gp.p99Ms - dp.p99Ms : Number.NaN,
  };

  console.log("\nratios (throughput)        c=1      c=16     c=64");
  for (const [name, byC] of Object.entries(ratios)) {
    console.log(
      `  ${name.padEnd(24)}${CONCURRENCY.map((c) => fmt(byC[c] ?? Number.NaN).padStart(9)).join("")}`,
    );
  }
  console.log(
    `\nadded latency at 1 connection: GET p50 +${fmt(added.p50Ms, 3)} ms, p99 +${fmt(added.p99Ms, 3)} ms; ` +
      `POST p50 +${fmt(added.postP50Ms, 3)} ms, p99 +${fmt(added.postP99Ms, 3)} ms`,
  );
  console.log(
    `gateway RSS: ${fmt(idleRssMb, 1)} MB idle (warmed up), ${fmt(maxRssMb, 1)} MB max under load` +
      ` (${gatewayBuild === "bundle" ? "bundle, plain node, as deployed" : "sources through tsx"})`,
  );
  console.log(
    `leaf issuance: mean ${fmt(leaf.meanMs)} ms (p50 ${fmt(leaf.p50Ms)}, max ${fmt(leaf.maxMs)}) over ${leaf.hosts} fresh hosts; cached lookup ${fmt(leaf.cachedLookupUs, 3)} µs`,
  );
  if (allocatedBytesPerRequest !== undefined) {
    console.log(
      `gateway allocation: ${fmt(allocatedBytesPerRequest, 0)} bytes per request over the run` +
        ` (${PLAN_ROUTES} routes per plan, ${SESSIONS} session${SESSIONS === 1 ? "" : "s"})`,
    );
  }
  console.log(
    `gateway metrics: ${gatewayMetrics.requestsHttpOk} HTTP + ${gatewayMetrics.requestsHttpsOk} HTTPS requests ok; credential cache ${gatewayMetrics.credentialCacheHits} hits, ${gatewayMetrics.credentialCacheMisses} misses`,
  );
  console.log(
    `sessions: ${SESSIONS} on ${plans} plan${plans === 1 ? "" : "s"}; control plane during the cases: ` +
      `${controlPlaneDuringCases.planLookups} plan lookups, ${controlPlaneDuringCases.credentialResolutions} credential resolutions`,
  );
  console.log(
    `/metrics after the run: ${gatewayMetrics.exposition.lines} lines, ${fmt(gatewayMetrics.exposition.bytes / 1024, 1)} KiB`,
  );

  // A Nagle / delayed-ACK stall delays every affected request by ~40 ms, so it shows in the
  // median: the slower median of GET and POST (separate header and body writes) at c=1.
  const worstC1P50 = Math.max(g1?.p50Ms ?? Number.NaN, gp?.p50Ms ?? Number.NaN);
  const targets = [
    {
      target: `gateway ≥ ${TARGETS.nginxRatioAt16}× nginx injector, plain HTTP, 16 connections`,
      value: ratios.gatewayOverNginxHttp![16] ?? Number.NaN,
      met: (ratios.gatewayOverNginxHttp![16] ?? 0) >= TARGETS.nginxRatioAt16,
    },
    {
      target: `added p50 ≤ ${TARGETS.addedP50Ms} ms at 1 connection`,
      value: added.p50Ms,
      met: added.p50Ms <= TARGETS.addedP50Ms,
    },
    {
      target: `added p99 ≤ ${TARGETS.addedP99Ms} ms at 1 connection`,
      value: added.p99Ms,
      met: added.p99Ms <= TARGETS.addedP99Ms,
    },
    {
      target: `no ${TARGETS.nagleMs} ms penalty (GET and POST p50 at 1 connection < 1 ms)`,
      value: worstC1P50,
      met: worstC1P50 < 1,
    },
    {
      target: `HTTPS interception ≥ ${TARGETS.httpsRatio}× direct HTTPS, 16 connections`,
      value: ratios.gatewayOverDirectHttps![16] ?? Number.NaN,
      met: (ratios.gatewayOverDirectHttps![16] ?? 0) >= TARGETS.httpsRatio,
    },
    { target: `gateway RSS < ${TARGETS.rssMb} MB`, value: maxRssMb, met: maxRssMb < TARGETS.rssMb },
    {
      target: `leaf issuance ≤ ${TARGETS.leafIssueMs} ms`,
      value: leaf.meanMs,
      met: leaf.meanMs <= TARGETS.leafIssueMs,
    },
  ];
  console.log("\ntargets (SPEC §11)");
  for (const t of targets)
    console.log(`  ${t.met ? "met   " : "MISSED"}  ${t.target}: ${fmt(t.value, 3)}`);
  const fastest = runFastest(results.map((r) => r.window));
  const disturbed = results.flatMap((r) => {
    const why = disturbance(r.window, fastest);
    return why === null ? [] : [`  ${r.case} c=${r.connections}: ${why}`];
  });
  if (disturbed.length > 0) {
    console.log(
      "\nDISTURBED measurements (their CPU per request and the ratios built on them are not comparable with a quiet run):",
    );
    for (const line of disturbed) console.log(line);
  }
  if (profile) printProfileSummary(profile);

  writeJson(jsonFile, {
    machine,
    settings: {
      durationS,
      warmupS,
      firstWarmupS,
      loadGenerator: useWrk
        ? "wrk 1 thread (HTTP), undici closed loop (HTTPS)"
        : "undici closed loop",
      nginx: useNginx
        ? "1 worker process, access_log off, upstream keepalive 128"
        : "not installed",
      controlPlane:
        "real: API app on embedded PostgreSQL (fsync off) in the orchestrating process; credentials cached after the first request",
      gatewayLog: logFile === "" ? "(temporary, --alloc)" : logFile,
      gatewayBuild:
        gatewayBuild === "bundle"
          ? "node apps/data-plane-gateway/dist/main.mjs (pnpm build; as deployed)"
          : "node --import tsx apps/data-plane-gateway/src/main.ts",
      gatewayNodeFlags,
      planRoutes: PLAN_ROUTES,
      sessions: SESSIONS,
      plans,
    },
    results,
    ratios,
    addedLatencyMs: added,
    gatewayRssIdleMb: idleRssMb,
    gatewayRssMaxMb: maxRssMb,
    ...(allocatedBytesPerRequest !== undefined ? { allocatedBytesPerRequest } : {}),
    gatewayMetrics,
    controlPlaneDuringCases,
    warmSeconds,
    leaf,
    targets,
    ...(profile ? { profile } : {}),
  });
}

await main();
