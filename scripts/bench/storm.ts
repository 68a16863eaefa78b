/**
 * The first-request storm (issue 14, "Running as a fleet"): `--sandboxes` (200) sandboxes start at
 * once, each a distinct session sending its first request through ONE real gateway process to a
 * loopback upstream. Target: p99 < 500 ms.
 *
 *   pnpm bench:storm [--sandboxes 200] [--plans N] [--rounds 3] [--warmup 8]
 *                    [--client node|undici] [--cold-upstream] [--json FILE] [--profile DIR]
 *                    [--pg-statements] [--gateway-node-flags "FLAGS"] [--gateway-bundle FILE]
 *                    [--gateway-log FILE]
 *
 * Each sandbox has its own connection (CONNECT with its session token as proxy credential, TLS
 * terminated by the gateway with a leaf from the deployment's CA; `storm-sandboxes.ts`, with
 * `node:net`/`tls` and an HTTP/1.1 request framed by the harness by default, or an undici
 * `ProxyAgent` per sandbox with `--client undici`) and sends
 * `GET https://localhost:<port>/v1/__check`. For each, the gateway verifies the token, asks the
 * control plane whether the session is live, loads the session's plan and resolves the route's
 * credential — on a cold cache, since every session is new — then forwards with the credential
 * injected (the upstream answers with the digest of the `Authorization` it got, checked here).
 * `--plans` (default: one per sandbox, every credential cold) spreads the sessions over fewer
 * plans, as sandboxes started from one profile version share their plan and cached credential.
 * Each round is a new set of sessions; the gateway stays up across rounds, warmed once by a
 * session of its own (JWKS, event feed, the host's leaf certificate). Then `--warmup` rounds (8)
 * of the same shape as the measured ones — fresh sessions, every process's first storms — are
 * run and reported apart from the measured rounds: a deployed gateway and API are long-running
 * processes whose code the JIT has long compiled, and a storm meets them that way; the figures
 * of the warm-up rounds say what the first storms after a start cost. Eight, because the
 * processes reach their steady CPU per first request only after about three storms on Node 24
 * (2026-12-06: gateway 2.75–3.3 → 1.7–2.25 → 1.35–1.85 ms, API 0.97–1.1 → 0.4–0.9 → 0.2–0.5 ms)
 * and about eight on Node 20, which has no Maglev tier: after three, its gateway's compiler
 * threads still took 0.25–0.95 ms per first request (TurboFan compiling functions for the first
 * time; gateway 2.0–2.4 ms per first request after 3 warm-up storms, 1.2–1.6 after 8, as Node 24).
 * With fewer, the measured rounds still carry the JIT's warm-up (docs/benchmarks.md, "Warm-up
 * rounds to the processes' steady state" and "Node 20's gateway per first request").
 *
 * Processes: the upstream (`gateway-upstream.ts`), the gateway bundle, the sandboxes (one process
 * for all rounds, `storm-sandboxes.ts`), and this process: the real control plane app
 * (`gateway-control-plane.ts`) on an embedded, durable PostgreSQL with the audit sealer on its
 * deployment timer. CPU per request is read for the gateway, this process (the API),
 * PostgreSQL and the sandboxes, the gateway's split between its main thread and its other
 * threads (V8's GC and compiler workers, libuv's pool). At the end every audit
 * chain must verify and every resolution must be audited with the trace id the gateway sent.
 * The upstream's CPU and the TLS connections the gateway opens to it (full or resumed handshakes)
 * are reported per round too. By default the upstream keeps idle connections 120 s, so after the
 * warm-up round the gateway's pool is warm; `--cold-upstream` has the upstream close them after 3 s
 * (the gateway's pool, told so by its `Keep-Alive` header, after 1 s) and waits 4 s between rounds,
 * so every round opens its upstream connections anew, as after a provider's idle timeout.
 * `--profile DIR` writes CPU profiles of the gateway (`node --cpu-prof`) and of this process over
 * the rounds (warm-up included), and of the sandboxes, and prints where each spent its time.
 * `--pg-statements` loads `pg_stat_statements` into the embedded PostgreSQL and prints its
 * costliest statements over the measured rounds (calls, rows, execution and planning ms).
 * `--gateway-node-flags "…"` starts the gateway with these Node flags after the deployed ones
 * (`SERVICE_NODE_FLAGS`; a later V8 flag wins), e.g. `--openssl-config=FILE` or
 * `--max-semi-space-size=16`, to measure a flag before `scripts/build.ts` adopts it.
 * `--gateway-bundle FILE` runs that gateway bundle instead of building this checkout's (an A/B
 * against another commit's `apps/data-plane-gateway/dist/main.mjs`, copied aside).
 * `--gateway-log FILE` keeps the gateway's standard output (its logs, and whatever a
 * `--gateway-node-flags` such as `--trace-deopt` prints) in FILE instead of the run's temporary
 * directory.
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import os, { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { createTestCa, getFreePort } from "@keyway/test-harness";
import { DEFAULT_SEAL_INTERVAL_MS } from "../../apps/control-plane-api/src/audit/sealer";
import { buildService, SERVICE_NODE_FLAGS } from "../build";
import { jsonOutputPath, machineFacts, percentile, writeJson } from "./bench-lib";
import { printProfileSummary, summarizeCpuProfile } from "./cpuprofile-top";
import {
  type BenchControlPlane,
  benchGatewayConfig,
  startBenchControlPlane,
} from "./gateway-control-plane";
import type { UpstreamStats } from "./gateway-upstream";
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

const SECRET = "sk-bench-0123456789abcdef";
const CHECK_PATH = "/v1/__check";
const TARGET_P99_MS = 500;

function intFlag(name: string, fallback: number, min = 1): number {
  const at = process.argv.indexOf(name);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} takes an integer ≥ ${min}`);
  return value;
}

const profileDir = (() => {
  const at = process.argv.indexOf("--profile");
  return at < 0 ? undefined : resolve(process.argv[at + 1] ?? "storm-profile");
})();
const SANDBOXES = intFlag("--sandboxes", 200);
const PLANS = intFlag("--plans", SANDBOXES);
const ROUNDS = intFlag("--rounds", 3);
const WARMUP_ROUNDS = intFlag("--warmup", 8, 0);
const CLIENT = (() => {
  const at = process.argv.indexOf("--client");
  const client = at < 0 ? "node" : process.argv[at + 1];
  if (client !== "node" && client !== "undici") throw new Error("--client is node or undici");
  return client;
})();
const COLD_UPSTREAM = process.argv.includes("--cold-upstream");
const PG_STATEMENTS = process.argv.includes("--pg-statements");
function stringFlag(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  if (at < 0) return undefined;
  const value = process.argv[at + 1];
  if (value === undefined) throw new Error(`${name} takes a value`);
  return value;
}
const GATEWAY_NODE_FLAGS = (stringFlag("--gateway-node-flags") ?? "").split(/\s+/).filter(Boolean);
const GATEWAY_BUNDLE = stringFlag("--gateway-bundle");
const GATEWAY_LOG = stringFlag("--gateway-log");
/** The upstream's keep-alive with `--cold-upstream`, and the pause between rounds. */
const COLD_KEEP_ALIVE_MS = 3_000;
const ROUND_PAUSE_MS = COLD_UPSTREAM ? COLD_KEEP_ALIVE_MS + 1_000 : 1_000;
if (PLANS > SANDBOXES) throw new Error("--plans cannot exceed --sandboxes");

/**
 * CPU ms of a process's main thread and of its other threads (V8's GC and compiler workers,
 * libuv's pool), from `/proc/<pid>/task`: a CPU profile sees only the main thread.
 */
function threadCpuMs(pid: number): { main: number; other: number } {
  const split = { main: 0, other: 0 };
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return split;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const ms = (Number(fields[11]) + Number(fields[12])) * 10;
      if (tid === String(pid)) split.main += ms;
      else split.other += ms;
    } catch {
      // The thread has ended: its time is no longer listed.
    }
  }
  return split;
}

interface Round {
  latencyMs: { p50: number; p99: number; max: number; min: number };
  wallMs: number;
  /** CPU time per sandbox request, µs, per process. */
  cpuUsPerRequest: {
    gateway: number;
    api: number;
    postgres: number;
    sandboxes: number;
    upstream: number;
  };
  /** The gateway's CPU per request split: its main thread, and its other threads. */
  gatewayThreadsUs: { main: number; other: number };
  /** New TLS connections the gateway opened to the upstream, by handshake kind. */
  upstreamConnections: { full: number; resumed: number; openAfter: number };
  /** Plans fetched by digest, resolutions, internal requests in all, and the liveness ones. */
  served: { plans: number; credentials: number; internal: number; liveness: number };
  loadAverage: number;
}

async function main() {
  const machine = machineFacts(["pnpm bench:storm", ...process.argv.slice(2)].join(" "));
  const jsonFile = jsonOutputPath();
  const dir = await mkdtemp(join(tmpdir(), "keyway-bench-storm-"));
  await chmod(dir, 0o755);
  const children: Spawned[] = [];
  let cp: BenchControlPlane | undefined;
  try {
    const upstreamCa = await createTestCa({ commonName: "Bench upstream CA" });
    const gatewayCa = await createTestCa({ commonName: "Bench gateway CA" });
    const upstreamLeaf = await upstreamCa.issueLeaf({ hosts: ["localhost", "127.0.0.1"] });
    const file = (name: string, text: string) => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    };
    const [upstreamHttp, upstreamHttps] = await Promise.all([getFreePort(), getFreePort()]);
    const authority = `localhost:${upstreamHttps}`;
    const allRounds = WARMUP_ROUNDS + ROUNDS;
    console.log(`seeding ${allRounds} × ${SANDBOXES} sessions on ${PLANS} plan(s) per round …`);
    cp = await startBenchControlPlane({
      baseUrls: [`https://${authority}/v1`],
      secret: SECRET,
      tokenTtlSeconds: 3 * 3600,
      // The gateway's warm-up session, then each round's sandboxes (their own profile versions),
      // the warm-up rounds' first.
      groups: [
        { sessions: 1, plans: 1 },
        ...Array.from({ length: allRounds }, () => ({ sessions: SANDBOXES, plans: PLANS })),
      ],
      durable: true,
      auditSealIntervalMs: DEFAULT_SEAL_INTERVAL_MS,
      ...(PG_STATEMENTS
        ? {
            postgresSettings: {
              shared_preload_libraries: "pg_stat_statements",
              "pg_stat_statements.track_planning": "on",
            },
          }
        : {}),
    });

    const upstream = spawnNode(
      [
        "--import",
        "tsx",
        join(repoRoot, "scripts/bench/gateway-upstream.ts"),
        String(upstreamHttp),
        String(upstreamHttps),
        file("upstream-cert.pem", upstreamLeaf.certPem),
        file("upstream-key.pem", upstreamLeaf.keyPem),
        ...(COLD_UPSTREAM ? [String(COLD_KEEP_ALIVE_MS)] : []),
      ],
      {},
    );
    children.push(upstream);
    await waitFor("upstream", async () => upstream.output().includes("ready"), upstream);
    /** The upstream's counters: it runs on the same cores, so its CPU sets the wall time too. */
    const upstreamStats = async (): Promise<UpstreamStats> => {
      const response = await fetch(`http://127.0.0.1:${upstreamHttp}/__stats`);
      return (await response.json()) as UpstreamStats;
    };

    // Chosen just before the gateway starts: the embedded PostgreSQL took a port meanwhile.
    const [proxyPort, adminPort] = await Promise.all([getFreePort(), getFreePort()]);
    const config = file(
      "keyway.toml",
      benchGatewayConfig(cp, {
        proxyPort,
        adminPort,
        caCertPath: file("gateway-ca.pem", gatewayCa.certPem),
        caKeyPath: file("gateway-ca-key.pem", gatewayCa.keyPem),
        gatewayKeyPath: file("gateway-key.json", JSON.stringify(cp.gatewayKey.privateJwk)),
      }),
    );
    const logFd = openSync(GATEWAY_LOG ?? join(dir, "gateway.log"), "w");
    if (profileDir) mkdirSync(profileDir, { recursive: true });
    const profileFlags = profileDir ? ["--cpu-prof", "--cpu-prof-dir", profileDir] : [];
    const gateway = spawnNode(
      [
        ...profileFlags,
        ...SERVICE_NODE_FLAGS["data-plane-gateway"],
        ...GATEWAY_NODE_FLAGS,
        GATEWAY_BUNDLE === undefined
          ? await buildService("data-plane-gateway")
          : resolve(GATEWAY_BUNDLE),
      ],
      {
        env: {
          KEYWAY_CONFIG: config,
          NODE_EXTRA_CA_CERTS: file("upstream-ca.pem", upstreamCa.certPem),
        },
        stdoutFd: logFd,
      },
    );
    closeSync(logFd);
    children.push(gateway);
    const gatewayPid = gateway.child.pid ?? 0;
    await waitFor("gateway", () => isReady(`http://127.0.0.1:${adminPort}`), gateway);

    const expected = createHash("sha256").update(`Bearer ${SECRET}`).digest("hex");
    const input = file(
      "storm.json",
      JSON.stringify({
        proxyUrl: `http://127.0.0.1:${proxyPort}`,
        url: `https://${authority}${CHECK_PATH}`,
        gatewayCaPem: gatewayCa.certPem,
        expectedAuthorizationSha256: expected,
        client: CLIENT,
      }),
    );
    const sandboxProfile = profileDir
      ? ["--cpu-prof", "--cpu-prof-dir", profileDir, "--cpu-prof-name", "sandboxes.cpuprofile"]
      : [];
    const sandboxes = spawnNode(
      [
        ...sandboxProfile,
        "--import",
        "tsx",
        join(repoRoot, "scripts/bench/storm-sandboxes.ts"),
        input,
      ],
      { stdin: "pipe" },
    );
    children.push(sandboxes);
    const sandboxesExited = once(sandboxes.child, "exit");
    const answers = createInterface({ input: sandboxes.child.stdout ?? process.stdin })[
      Symbol.asyncIterator
    ]();
    /** Each token's first request at once, from the sandboxes' own process. */
    const storm = async (tokens: readonly string[]) => {
      sandboxes.child.stdin?.write(`${JSON.stringify(tokens)}\n`);
      const answer = await Promise.race([answers.next(), sandboxesExited.then(() => undefined)]);
      const line = answer?.done === false ? String(answer.value) : "";
      if (!line.startsWith("{")) throw new Error(`the sandboxes failed:\n${sandboxes.output()}`);
      return JSON.parse(line) as { latenciesMs: number[]; cpuMs: number };
    };

    const [warmup, ...roundGroups] = cp.groups;
    await storm(warmup?.tokens ?? []);

    const postgresPids = () => [cp?.postgresPid ?? 0, ...childPids(cp?.postgresPid ?? 0)];
    const warmupRounds: Round[] = [];
    const rounds: Round[] = [];
    const all: number[] = [];
    const profiler = profileDir === undefined ? undefined : new Session();
    if (profiler) {
      profiler.connect();
      await profiler.post("Profiler.enable");
      await profiler.post("Profiler.start");
    }
    for (const [index, group] of roundGroups.entries()) {
      if (PG_STATEMENTS && index === WARMUP_ROUNDS) {
        await cp.sql`create extension if not exists pg_stat_statements`;
        await cp.sql`select pg_stat_statements_reset()`;
      }
      // Let the sealer and the previous round's connections settle first (or close, with
      // `--cold-upstream`).
      await sleep(ROUND_PAUSE_MS);
      const servedBefore = cp.served();
      const upstreamBefore = await upstreamStats();
      const cpuBefore = {
        gateway: cpuMs([gatewayPid]),
        gatewayThreads: threadCpuMs(gatewayPid),
        own: process.cpuUsage(),
        postgres: cpuMs(postgresPids()),
      };
      const started = performance.now();
      const answer = await storm(group.tokens);
      const samples = answer.latenciesMs;
      const wallMs = performance.now() - started;
      const own = process.cpuUsage(cpuBefore.own);
      const gatewayThreads = threadCpuMs(gatewayPid);
      const cpu = {
        gateway: cpuMs([gatewayPid]) - cpuBefore.gateway,
        own: (own.user + own.system) / 1000,
        postgres: cpuMs(postgresPids()) - cpuBefore.postgres,
      };
      const servedAfter = cp.served();
      const upstreamAfter = await upstreamStats();
      const measured = index >= WARMUP_ROUNDS;
      if (measured) all.push(...samples);
      const n = samples.length;
      (measured ? rounds : warmupRounds).push({
        latencyMs: {
          p50: percentile(samples, 50),
          p99: percentile(samples, 99),
          max: Math.max(...samples),
          min: Math.min(...samples),
        },
        wallMs,
        cpuUsPerRequest: {
          gateway: (cpu.gateway * 1000) / n,
          api: (cpu.own * 1000) / n,
          sandboxes: (answer.cpuMs * 1000) / n,
          postgres: (cpu.postgres * 1000) / n,
          upstream: (upstreamAfter.cpuUs - upstreamBefore.cpuUs) / n,
        },
        gatewayThreadsUs: {
          main: ((gatewayThreads.main - cpuBefore.gatewayThreads.main) * 1000) / n,
          other: ((gatewayThreads.other - cpuBefore.gatewayThreads.other) * 1000) / n,
        },
        upstreamConnections: {
          full: upstreamAfter.fullHandshakes - upstreamBefore.fullHandshakes,
          resumed: upstreamAfter.resumedHandshakes - upstreamBefore.resumedHandshakes,
          openAfter: upstreamAfter.tlsOpen,
        },
        served: {
          plans: servedAfter.plans - servedBefore.plans,
          credentials: servedAfter.credentials - servedBefore.credentials,
          internal: servedAfter.internal - servedBefore.internal,
          liveness: servedAfter.liveness - servedBefore.liveness,
        },
        loadAverage: os.loadavg()[0] ?? 0,
      });
    }
    // The sandboxes write their profile as they exit, when their stdin ends.
    sandboxes.child.stdin?.end();
    await sandboxesExited;

    if (profiler && profileDir) {
      const { profile } = await profiler.post("Profiler.stop");
      writeFileSync(join(profileDir, "api.cpuprofile"), JSON.stringify(profile));
      profiler.disconnect();
    }
    if (PG_STATEMENTS) {
      // Before the audit check's own statements.
      console.log(`PostgreSQL's statements over the ${ROUNDS} measured round(s), costliest first:`);
      console.table(
        await cp.sql`
          select calls, rows, round(total_exec_time::numeric, 1) as exec_ms,
            round(total_plan_time::numeric, 1) as plan_ms,
            left(regexp_replace(query, '\\s+', ' ', 'g'), 110) as query
          from pg_stat_statements order by total_exec_time + total_plan_time desc limit 20`,
      );
    }
    const audit = await cp.auditCheck();
    const served = cp.served();
    const overall = {
      p50: percentile(all, 50),
      p99: percentile(all, 99),
      max: Math.max(...all),
    };
    const auditOk =
      audit.chainOk &&
      audit.resolved === served.credentials &&
      audit.resolvedWithTraceId === audit.resolved;
    const figures = {
      sandboxes: SANDBOXES,
      plansPerRound: PLANS,
      client: CLIENT,
      coldUpstream: COLD_UPSTREAM,
      gatewayNodeFlags: [...SERVICE_NODE_FLAGS["data-plane-gateway"], ...GATEWAY_NODE_FLAGS],
      gatewayBundle: GATEWAY_BUNDLE ?? "built from this checkout",
      warmupRounds,
      rounds,
      overallMs: overall,
      audit: { ...audit, resolutionsServed: served.credentials, ok: auditOk },
      targetP99Ms: TARGET_P99_MS,
      meetsTarget: overall.p99 < TARGET_P99_MS && auditOk,
      postgres: "embedded, durable (fsync on)",
      ...machine,
    };

    console.log(
      `first-request storm — ${machine.cpu}, ${machine.cores} cores, node ${machine.node}: ` +
        `${SANDBOXES} sandboxes at once on ${PLANS} plan(s), ${ROUNDS} round(s) after ` +
        `${WARMUP_ROUNDS} warm-up round(s), client ${CLIENT}` +
        (COLD_UPSTREAM ? ", upstream connections closed between rounds" : "") +
        (GATEWAY_NODE_FLAGS.length > 0 ? `, gateway flags ${GATEWAY_NODE_FLAGS.join(" ")}` : "") +
        (GATEWAY_BUNDLE === undefined ? "" : `, gateway bundle ${GATEWAY_BUNDLE}`),
    );
    console.table(
      Object.fromEntries(
        [
          ...warmupRounds.map((r, i) => [`warm-up ${i + 1}`, r] as const),
          ...rounds.map((r, i) => [`round ${i + 1}`, r] as const),
        ].map(([label, r]) => [
          label,
          {
            "p50 (ms)": r.latencyMs.p50.toFixed(0),
            "p99 (ms)": r.latencyMs.p99.toFixed(0),
            "max (ms)": r.latencyMs.max.toFixed(0),
            "CPU µs gateway": r.cpuUsPerRequest.gateway.toFixed(0),
            "of which main/other threads": `${r.gatewayThreadsUs.main.toFixed(0)}/${r.gatewayThreadsUs.other.toFixed(0)}`,
            "CPU µs API": r.cpuUsPerRequest.api.toFixed(0),
            "CPU µs PostgreSQL": r.cpuUsPerRequest.postgres.toFixed(0),
            "CPU µs sandboxes": r.cpuUsPerRequest.sandboxes.toFixed(0),
            "CPU µs upstream": r.cpuUsPerRequest.upstream.toFixed(0),
            "upstream TLS new (full/resumed)": `${r.upstreamConnections.full}/${r.upstreamConnections.resumed}`,
            "upstream open": r.upstreamConnections.openAfter,
            resolutions: r.served.credentials,
            "plan loads": r.served.plans,
            "internal requests": r.served.internal,
            "of which liveness": r.served.liveness,
            load: r.loadAverage.toFixed(1),
          },
        ]),
      ),
    );
    console.log(
      `all measured rounds: p50 ${overall.p50.toFixed(0)} ms, p99 ${overall.p99.toFixed(0)} ms, ` +
        `max ${overall.max.toFixed(0)} ms; audit chains ${audit.chainOk ? "verify" : "BROKEN"} ` +
        `(${audit.checkedEntries} entries), ${audit.resolvedWithTraceId} of ` +
        `${served.credentials} resolutions audited with a trace id`,
    );
    console.log(
      `target p99 < ${TARGET_P99_MS} ms with the audit intact: ${figures.meetsTarget ? "met" : "NOT met"}`,
    );
    writeJson(jsonFile, figures);
    if (profileDir) {
      // The gateway writes its profile when it exits.
      await stop(gateway.child);
      const gatewayProfile = readdirSync(profileDir).find((f) => f.includes(`.${gatewayPid}.0.`));
      for (const [name, path] of [
        ["this process (the API)", join(profileDir, "api.cpuprofile")],
        ["gateway", gatewayProfile && join(profileDir, gatewayProfile)],
        ["the sandboxes (start-up and warm-up included)", join(profileDir, "sandboxes.cpuprofile")],
      ] as const) {
        if (path === undefined) continue;
        console.log(`\n${name}`);
        printProfileSummary(summarizeCpuProfile(path, 25));
      }
    }
  } finally {
    for (const spawned of children.reverse()) await stop(spawned.child);
    await cp?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
