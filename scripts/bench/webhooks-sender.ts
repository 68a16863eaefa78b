/**
 * The provider side of `pnpm bench:webhooks`, in its own process: GitHub-shaped webhook events,
 * each built and signed when it is sent (its own body, `X-GitHub-Delivery` UUID and
 * `X-Hub-Signature-256` HMAC-SHA256 of the raw body under the target's webhook secret, as GitHub
 * signs), POSTed over an undici `Pool` of `concurrency` keep-alive connections.
 *
 * - `closed`: `concurrency` senders, each sending its next event as soon as the previous one is
 *   acknowledged (throughput); a warm-up on the same connections runs first and is not counted.
 * - `open`: events at a fixed rate whatever the answers (latency at a given load), at most
 *   `concurrency` in flight; `eventsFile` receives `<event id> <send time, epoch ms>` per accepted
 *   event, for the ingest-to-delivery latency the orchestrator computes from its subscriber.
 *
 *   node --import tsx scripts/bench/webhooks-sender.ts '<SenderSpec as JSON>'
 *
 * Prints one `SENDER_JSON {…}` line.
 */
import { createHmac, randomUUID } from "node:crypto";
import { createWriteStream, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { Pool } from "undici";
import { percentile } from "./bench-lib";

export interface SenderSpec {
  /** The ingest route's URL (or the trivial server's, for the sender's own ceiling). */
  url: string;
  secret: string;
  /** GitHub App installation ids; events go to them in turn. */
  installationIds: readonly string[];
  concurrency: number;
  mode: "closed" | "open";
  /** `open` only: events per second. */
  ratePerSecond?: number;
  warmupMs: number;
  durationMs: number;
  /** `open` only: where accepted events and their send times are written. */
  eventsFile?: string;
  /**
   * Where each measured request's send and answer times are written (`<sent> <answered>
   * <status>` per line, epoch ms), to line slow answers up with the other processes' pauses.
   */
  traceFile?: string;
}

export interface SenderResult {
  /** Events answered during the measured window. */
  events: number;
  /** Of `events`, answered 202 as a new event (not `duplicate`). */
  accepted: number;
  /** Answers other than 202 (and transport failures), by status (`0` for a failure). */
  errors: Record<string, number>;
  /** 202s over the whole run, warm-up included: what the database must hold. */
  acceptedIncludingWarmup: number;
  durationMs: number;
  eventsPerSecond: number;
  ackMs: { p50: number; p95: number; p99: number; mean: number; max: number };
  /** Mean raw body size of the events sent. */
  meanBodyBytes: number;
  /** `open` only: sends that started more than 5 ms after their scheduled time. */
  lateSends: number;
  /**
   * This process's CPU from its first send to its last answer (warm-up included): what it took
   * from the cores the API and PostgreSQL run on. Its start (node, tsx, undici: ≈ 0.6–1 s of
   * CPU, before any send) is left out: counted, it added ≈ 100 µs to every event's figure.
   */
  cpuMs: number;
}

/** Time on the wall clock with sub-millisecond precision, comparable across processes. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Marks the per-event number in a body template. */
const N = "__N__";

/**
 * Raw bodies shaped like GitHub's (the fields GitHub sends for these events, abridged in the
 * long URL lists), cycling through four event kinds. Each body carries its own numbers (ids,
 * SHA suffix), so no two bodies or signatures are alike.
 */
function eventTemplates(installationId: string): { event: string; parts: string[] }[] {
  const owner = {
    login: "keyway-bench",
    id: 90210,
    node_id: "O_kgDOBbENCh",
    avatar_url: "https://avatars.githubusercontent.com/u/90210?v=4",
    url: "https://api.github.com/users/keyway-bench",
    html_url: "https://github.com/keyway-bench",
    type: "Organization",
    site_admin: false,
  };
  const repository = {
    id: 1296269,
    node_id: "R_kgDOABPHjQ",
    name: "service",
    full_name: "keyway-bench/service",
    private: true,
    owner,
    html_url: "https://github.com/keyway-bench/service",
    description: "A service whose events the benchmark sends",
    fork: false,
    url: "https://api.github.com/repos/keyway-bench/service",
    issues_url: "https://api.github.com/repos/keyway-bench/service/issues{/number}",
    pulls_url: "https://api.github.com/repos/keyway-bench/service/pulls{/number}",
    created_at: "2024-01-26T19:01:12Z",
    updated_at: "2026-11-30T08:14:43Z",
    pushed_at: "2026-12-01T10:02:11Z",
    git_url: "git://github.com/keyway-bench/service.git",
    ssh_url: "git@github.com:keyway-bench/service.git",
    clone_url: "https://github.com/keyway-bench/service.git",
    size: 10240,
    stargazers_count: 12,
    watchers_count: 12,
    language: "TypeScript",
    has_issues: true,
    has_projects: false,
    forks_count: 1,
    open_issues_count: 7,
    visibility: "private",
    default_branch: "main",
    topics: ["agents", "integrations"],
  };
  const sender = {
    login: "octo-dev",
    id: 583231,
    node_id: "MDQ6VXNlcjU4MzIzMQ==",
    avatar_url: "https://avatars.githubusercontent.com/u/583231?v=4",
    url: "https://api.github.com/users/octo-dev",
    html_url: "https://github.com/octo-dev",
    type: "User",
    site_admin: false,
  };
  const installation = {
    id: Number(installationId),
    node_id: `MDIzOkludGVncmF0aW9u${installationId}`,
  };
  const sha = `9f3c0a1be2d4c5f60718293a4b5c6d7e8f9${N}`;
  const bodies: { event: string; payload: unknown }[] = [
    {
      event: "push",
      payload: {
        ref: "refs/heads/main",
        before: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        after: sha,
        created: false,
        deleted: false,
        forced: false,
        compare: `https://github.com/keyway-bench/service/compare/0d1a26e67d8f...${N}`,
        commits: [1, 2, 3].map((i) => ({
          id: `${sha}${i}`,
          tree_id: "f9d2a07e9488b91af2641b26b9407fe22a451433",
          distinct: true,
          message: `Change ${i} of push ${N}: tighten the retry schedule`,
          timestamp: "2026-12-01T10:02:11Z",
          url: `https://github.com/keyway-bench/service/commit/${sha}${i}`,
          author: { name: "Octo Dev", email: "octo@example.com", username: "octo-dev" },
          committer: { name: "Octo Dev", email: "octo@example.com", username: "octo-dev" },
          added: [],
          removed: [],
          modified: ["src/retry.ts", "src/retry.test.ts"],
        })),
        repository,
        pusher: { name: "octo-dev", email: "octo@example.com" },
        sender,
        installation,
      },
    },
    {
      event: "pull_request",
      payload: {
        action: "opened",
        number: N,
        pull_request: {
          url: `https://api.github.com/repos/keyway-bench/service/pulls/${N}`,
          id: N,
          node_id: `PR_kwDOABPHjc5${N}`,
          html_url: `https://github.com/keyway-bench/service/pull/${N}`,
          number: N,
          state: "open",
          locked: false,
          title: `Retry deliveries with jitter (${N})`,
          user: sender,
          body: "Spreads retries over ±10 % so that a subscriber coming back is not hit by every retry at once.",
          created_at: "2026-12-01T10:02:11Z",
          updated_at: "2026-12-01T10:02:11Z",
          draft: false,
          head: { label: "keyway-bench:retry-jitter", ref: "retry-jitter", sha, user: owner },
          base: { label: "keyway-bench:main", ref: "main", sha: "0d1a26e67d8f5e", user: owner },
          author_association: "MEMBER",
          merged: false,
          comments: 0,
          commits: 3,
          additions: 42,
          deletions: 7,
          changed_files: 2,
        },
        repository,
        sender,
        installation,
      },
    },
    {
      event: "issue_comment",
      payload: {
        action: "created",
        issue: {
          url: `https://api.github.com/repos/keyway-bench/service/issues/${N}`,
          id: N,
          number: N,
          title: "Deliveries stall when a subscriber is slow",
          user: sender,
          labels: [{ id: 208045946, name: "bug", color: "d73a4a", default: true }],
          state: "open",
          comments: 4,
          created_at: "2026-11-28T09:00:00Z",
          updated_at: "2026-12-01T10:02:11Z",
          author_association: "MEMBER",
          body: "Seen in staging with a subscriber that takes 20 s to answer.",
        },
        comment: {
          url: `https://api.github.com/repos/keyway-bench/service/issues/comments/${N}`,
          id: N,
          user: sender,
          created_at: "2026-12-01T10:02:11Z",
          updated_at: "2026-12-01T10:02:11Z",
          author_association: "MEMBER",
          body: `Reproduced (comment ${N}): the worker holds the row while it waits.`,
        },
        repository,
        sender,
        installation,
      },
    },
    {
      event: "check_run",
      payload: {
        action: "completed",
        check_run: {
          id: N,
          name: "test",
          node_id: `CR_kwDOABPHjc8${N}`,
          head_sha: sha,
          status: "completed",
          conclusion: "success",
          started_at: "2026-12-01T10:02:20Z",
          completed_at: "2026-12-01T10:05:41Z",
          output: { title: "All tests passed", summary: "1,204 tests, 0 failures" },
          check_suite: { id: N, head_branch: "retry-jitter", head_sha: sha, status: "completed" },
          app: { id: 15368, slug: "github-actions", name: "GitHub Actions" },
        },
        repository,
        sender,
        installation,
      },
    },
  ];
  return bodies.map(({ event, payload }) => ({
    event,
    // `N` as a field's whole value becomes a JSON number, inside a string part of the string.
    parts: JSON.stringify(payload).replaceAll(`"${N}"`, N).split(N),
  }));
}

function createEvents(spec: SenderSpec) {
  const templates = spec.installationIds.map(eventTemplates);
  let sequence = 0;
  return function nextEvent() {
    const n = sequence++;
    const forInstallation = templates[n % templates.length] ?? [];
    const template = forInstallation[Math.floor(n / templates.length) % forInstallation.length];
    if (template === undefined) throw new Error("no event templates");
    const body = template.parts.join(String(1_000_000 + n));
    const signature = createHmac("sha256", spec.secret).update(body).digest("hex");
    return {
      body,
      headers: {
        "content-type": "application/json",
        "user-agent": "GitHub-Hookshot/8e1b5f2",
        "x-github-event": template.event,
        "x-github-delivery": randomUUID(),
        "x-github-hook-id": "428593821",
        "x-github-hook-installation-target-id": "15368",
        "x-github-hook-installation-target-type": "integration",
        "x-hub-signature-256": `sha256=${signature}`,
      },
    };
  };
}

async function run(spec: SenderSpec): Promise<SenderResult> {
  const target = new URL(spec.url);
  const pool = new Pool(target.origin, { connections: spec.concurrency, pipelining: 1 });
  const nextEvent = createEvents(spec);
  const events = spec.eventsFile ? createWriteStream(spec.eventsFile) : undefined;

  const latencies: number[] = [];
  /** `traceFile`: sent, answered (epoch ms) and status of each measured request. */
  const trace: string[] = [];
  const errors: Record<string, number> = {};
  let accepted = 0;
  let acceptedIncludingWarmup = 0;
  let bodyBytes = 0;
  let sent = 0;
  let lateSends = 0;
  let measuring = false;
  let windowStart = 0;
  let windowEnd = Number.POSITIVE_INFINITY;

  async function sendOne(): Promise<void> {
    const event = nextEvent();
    bodyBytes += event.body.length;
    sent++;
    const sentAt = epochMs();
    const started = performance.now();
    let status = 0;
    let id: string | undefined;
    let duplicate = false;
    try {
      const response = await pool.request({
        path: `${target.pathname}${target.search}`,
        method: "POST",
        headers: event.headers,
        body: event.body,
      });
      status = response.statusCode;
      const text = await response.body.text();
      if (status === 202) {
        const parsed = JSON.parse(text) as { id?: unknown; duplicate?: unknown };
        id = typeof parsed.id === "string" ? parsed.id : undefined;
        duplicate = parsed.duplicate === true;
      }
    } catch {
      status = 0;
    }
    const ended = performance.now();
    const ok = status === 202 && id !== undefined && !duplicate;
    if (ok) {
      acceptedIncludingWarmup++;
      events?.write(`${id} ${sentAt.toFixed(3)}\n`);
    }
    if (!measuring || ended > windowEnd) return;
    latencies.push(ended - started);
    if (spec.traceFile !== undefined) {
      trace.push(`${sentAt.toFixed(3)} ${(sentAt + ended - started).toFixed(3)} ${status}`);
    }
    if (ok) accepted++;
    else errors[String(status)] = (errors[String(status)] ?? 0) + 1;
  }

  const cpuBefore = process.cpuUsage();
  let running = true;
  const finished: Promise<void>[] = [];
  if (spec.mode === "closed") {
    const loop = async () => {
      while (running) await sendOne();
    };
    for (let i = 0; i < spec.concurrency; i++) finished.push(loop());
  } else {
    const rate = spec.ratePerSecond ?? 100;
    finished.push(
      (async () => {
        const inFlight = new Set<Promise<void>>();
        const start = performance.now();
        for (let i = 0; running; i++) {
          const due = start + (i * 1000) / rate;
          const wait = due - performance.now();
          if (wait > 0) await sleep(wait);
          else if (wait < -5) lateSends++;
          if (!running) break;
          while (inFlight.size >= spec.concurrency) await Promise.race(inFlight);
          const sending = sendOne().finally(() => inFlight.delete(sending));
          inFlight.add(sending);
        }
        await Promise.all(inFlight);
      })(),
    );
  }

  await sleep(spec.warmupMs);
  measuring = true;
  windowStart = performance.now();
  await sleep(spec.durationMs);
  windowEnd = performance.now();
  running = false;
  await Promise.all(finished);
  const cpu = process.cpuUsage(cpuBefore);
  await pool.close();
  if (events) await new Promise<void>((resolve) => events.end(resolve));
  if (spec.traceFile !== undefined) writeFileSync(spec.traceFile, `${trace.join("\n")}\n`);

  const durationMs = windowEnd - windowStart;
  return {
    events: latencies.length,
    accepted,
    errors,
    acceptedIncludingWarmup,
    durationMs,
    eventsPerSecond: (latencies.length * 1000) / durationMs,
    ackMs: {
      p50: percentile(latencies, 50),
      p95: percentile(latencies, 95),
      p99: percentile(latencies, 99),
      mean: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length),
      max: latencies.reduce((a, b) => Math.max(a, b), 0),
    },
    meanBodyBytes: bodyBytes / Math.max(1, sent),
    lateSends,
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
}

function parseSpec(text: string | undefined): SenderSpec {
  if (text === undefined) throw new Error("usage: webhooks-sender.ts '<SenderSpec JSON>'");
  const spec: unknown = JSON.parse(text);
  const valid =
    typeof spec === "object" &&
    spec !== null &&
    "url" in spec &&
    typeof spec.url === "string" &&
    "secret" in spec &&
    typeof spec.secret === "string" &&
    "installationIds" in spec &&
    Array.isArray(spec.installationIds) &&
    "concurrency" in spec &&
    Number.isInteger(spec.concurrency) &&
    "mode" in spec &&
    (spec.mode === "closed" || spec.mode === "open") &&
    "warmupMs" in spec &&
    typeof spec.warmupMs === "number" &&
    "durationMs" in spec &&
    typeof spec.durationMs === "number";
  if (!valid) throw new Error(`not a sender spec: ${text}`);
  // The required fields are checked above; the optional ones are written by `webhooks.ts`.
  return spec as SenderSpec;
}

if (process.argv[1]?.endsWith("webhooks-sender.ts")) {
  const result = await run(parseSpec(process.argv[2]));
  process.stdout.write(`SENDER_JSON ${JSON.stringify(result)}\n`);
}
