/**
 * `pnpm bench:webhooks --trace DIR`: what the ingest phase's slowest acknowledgements overlapped.
 *
 * Inputs, all with wall-clock (epoch ms) times, in DIR:
 * - `ingest-requests.txt`: the sender's `<sent> <answered> <status>` per measured request;
 * - `api.<pid>.json`, `sender.<pid>.json`: GC pauses and event-loop stalls (`runtime-probe.mjs`);
 * - `postgres.log`: statements slower than `log_min_duration_statement`, checkpoints, autovacuum
 *   (`TRACE_POSTGRES_SETTINGS`; `%n` puts an epoch timestamp on each line).
 *
 * For the slowest 1 % of requests and for all of them, the share that overlapped each kind of
 * pause and the pause time inside their window: a cause of the tail shows up far more often, or
 * with far more time, in the slow requests than in the rest.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { DatabaseHandle } from "@keyway/db";
import { percentile } from "./bench-lib";
import type { SenderResult } from "./webhooks-sender";

/** Server settings for a traced run: only what is logged changes, not how the server works. */
export const TRACE_POSTGRES_SETTINGS: Record<string, string> = {
  log_line_prefix: "%n [%p] %b ",
  log_checkpoints: "on",
  log_autovacuum_min_duration: "0",
  log_min_duration_statement: "10",
  track_wal_io_timing: "on",
};

interface WalStats {
  wal_records: number;
  wal_fpi: number;
  wal_bytes: number;
  wal_buffers_full: number;
  wal_write: number;
  wal_sync: number;
  wal_write_time: number;
  wal_sync_time: number;
  checkpoints: number;
  checkpoint_write_ms: number;
  checkpoint_sync_ms: number;
  buffers_clean: number;
  autovacuum_count: number;
}

export async function walStats(database: DatabaseHandle): Promise<WalStats> {
  const [row] = await database.sql<WalStats[]>`
    select w.wal_records::float8, w.wal_fpi::float8, w.wal_bytes::float8,
      w.wal_buffers_full::float8, w.wal_write::float8, w.wal_sync::float8, w.wal_write_time,
      w.wal_sync_time,
      (c.num_timed + c.num_requested)::float8 as checkpoints, c.write_time as checkpoint_write_ms,
      c.sync_time as checkpoint_sync_ms, b.buffers_clean::float8,
      (select coalesce(sum(autovacuum_count + autoanalyze_count), 0)::float8
        from pg_stat_user_tables) as autovacuum_count
    from pg_stat_wal w, pg_stat_checkpointer c, pg_stat_bgwriter b`;
  if (row === undefined) throw new Error("no WAL statistics");
  return row;
}

export function printWalStats(before: WalStats, after: WalStats, sender: SenderResult): void {
  const d = (key: keyof WalStats) => after[key] - before[key];
  const events = Math.max(1, sender.acceptedIncludingWarmup);
  console.log(
    `PostgreSQL in the ingest phase: WAL ${(d("wal_bytes") / events).toFixed(0)} bytes and ` +
      `${(d("wal_records") / events).toFixed(1)} records per event (${d("wal_fpi")} full-page ` +
      `images), ${d("wal_write")} writes, ${d("wal_sync")} syncs (${(d("wal_sync_time") / Math.max(1, d("wal_sync"))).toFixed(2)} ms each), ` +
      `${d("wal_buffers_full")} writes because wal_buffers was full; ${d("checkpoints")} ` +
      `checkpoints (write ${d("checkpoint_write_ms").toFixed(0)} ms, sync ` +
      `${d("checkpoint_sync_ms").toFixed(0)} ms); background writer ${d("buffers_clean")} ` +
      `buffers; ${d("autovacuum_count")} autovacuum/autoanalyze runs`,
  );
}

/** A pause: [start, end) in epoch ms and its kind. */
interface Pause {
  start: number;
  end: number;
  kind: string;
}

function probePauses(dir: string, name: string): Pause[] {
  const pauses: Pause[] = [];
  for (const file of readdirSync(dir).filter((f) => f.startsWith(`${name}.`))) {
    const probe = JSON.parse(readFileSync(join(dir, file), "utf8")) as {
      gcs: [number, number, string][];
      stalls: [number, number][];
    };
    for (const [start, ms, kind] of probe.gcs) {
      pauses.push({ start, end: start + ms, kind: `${name} GC ${kind}` });
    }
    for (const [start, ms] of probe.stalls) {
      pauses.push({ start, end: start + ms, kind: `${name} event-loop stall > 3 ms` });
    }
  }
  return pauses;
}

/**
 * PostgreSQL's logged events: a slow statement's line is written at its end, with its duration;
 * a checkpoint from its `starting` line to its `complete` line; autovacuum at its end, with its
 * elapsed time.
 */
function postgresPauses(dir: string): Pause[] {
  let text = "";
  try {
    text = readFileSync(join(dir, "postgres.log"), "utf8");
  } catch {
    return [];
  }
  const pauses: Pause[] = [];
  let checkpointStart: number | undefined;
  const lines = text.split("\n");
  for (const [index, line] of lines.entries()) {
    const at = /^(?:\[STDERR\] )?(\d+\.\d+) \[\d+\] /.exec(line);
    if (at?.[1] === undefined) continue;
    const end = Number(at[1]) * 1000;
    const duration =
      /duration: ([\d.]+) ms\s+(?:statement|execute [^:]*|bind [^:]*|parse [^:]*):(.*)$/.exec(line);
    if (duration?.[1] !== undefined) {
      // The statement's first words, on this line or (a multi-line statement) the next.
      const words = (duration[2]?.trim() || lines[index + 1] || "").trim().split(/\s+/);
      const kind = `PostgreSQL statement > 10 ms (${words.slice(0, 2).join(" ").toLowerCase()})`;
      pauses.push({ start: end - Number(duration[1]), end, kind });
      continue;
    }
    if (/checkpoint starting/.test(line)) checkpointStart = end;
    else if (/checkpoint complete/.test(line) && checkpointStart !== undefined) {
      pauses.push({ start: checkpointStart, end, kind: "PostgreSQL checkpoint" });
      checkpointStart = undefined;
    }
    const vacuum = /automatic (vacuum|analyze) of table "([^"]+)"/.exec(line);
    const elapsed = /elapsed: ([\d.]+) s/.exec(line);
    if (vacuum !== null && elapsed?.[1] !== undefined) {
      const start = end - Number(elapsed[1]) * 1000;
      pauses.push({ start, end, kind: `PostgreSQL auto${vacuum[1]}` });
    }
  }
  return pauses;
}

/** Per kind of pause: how often, how long, and how much of the slow and of all requests it hit. */
export interface PauseKindSummary {
  perSecond: number;
  meanMs: number;
  maxMs: number;
  /** Share of the slowest 1 % (of all requests) whose window a pause of this kind overlapped. */
  slowShare: number;
  allShare: number;
  /** Pause time inside a slow (any) request's window, on average. */
  slowMsInside: number;
  allMsInside: number;
}

export interface TraceSummary {
  requests: number;
  seconds: number;
  p99: number;
  slow: number;
  kinds: Record<string, PauseKindSummary>;
  /** Slow requests per 100 ms of the run (by send time), busiest first: [second, count]. */
  clusters: [number, number][];
}

export function summarizeTrace(dir: string): TraceSummary | undefined {
  const requests = readFileSync(join(dir, "ingest-requests.txt"), "utf8")
    .trim()
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => line.split(" ").map(Number))
    .map(([sent = 0, answered = 0]) => ({ sent, answered, ms: answered - sent }));
  if (requests.length === 0) return undefined;
  const windowStart = Math.min(...requests.map((r) => r.sent));
  const windowEnd = Math.max(...requests.map((r) => r.answered));
  const pauses = [
    ...probePauses(dir, "api"),
    ...probePauses(dir, "sender"),
    ...postgresPauses(dir),
  ].filter((p) => p.end > windowStart && p.start < windowEnd);
  const p99 = percentile(
    requests.map((r) => r.ms),
    99,
  );
  const slow = requests.filter((r) => r.ms >= p99);
  const seconds = (windowEnd - windowStart) / 1000;

  /** Share of `set` overlapping a pause of `kind`, and the mean pause ms inside each window. */
  const overlap = (set: typeof requests, kind: string) => {
    let hit = 0;
    let inside = 0;
    for (const r of set) {
      let ms = 0;
      for (const p of pauses) {
        if (p.kind !== kind || p.end <= r.sent || p.start >= r.answered) continue;
        ms += Math.min(p.end, r.answered) - Math.max(p.start, r.sent);
      }
      if (ms > 0) hit++;
      inside += ms;
    }
    return { share: hit / set.length, meanMs: inside / set.length };
  };
  const kinds: Record<string, PauseKindSummary> = {};
  for (const kind of [...new Set(pauses.map((p) => p.kind))].sort()) {
    const durations = pauses.filter((p) => p.kind === kind).map((p) => p.end - p.start);
    const s = overlap(slow, kind);
    const a = overlap(requests, kind);
    kinds[kind] = {
      perSecond: durations.length / seconds,
      meanMs: durations.reduce((x, y) => x + y, 0) / durations.length,
      maxMs: Math.max(...durations),
      slowShare: s.share,
      allShare: a.share,
      slowMsInside: s.meanMs,
      allMsInside: a.meanMs,
    };
  }
  // When in the run the slow requests were: clustered in time points at one event.
  const byTenth = new Map<number, number>();
  for (const r of slow) {
    const tenth = Math.floor((r.sent - windowStart) / 100);
    byTenth.set(tenth, (byTenth.get(tenth) ?? 0) + 1);
  }
  const clusters = [...byTenth]
    .sort((a, b) => b[1] - a[1])
    .map(([tenth, n]): [number, number] => [tenth / 10, n]);
  return { requests: requests.length, seconds, p99, slow: slow.length, kinds, clusters };
}

export function printTrace(dir: string): void {
  const summary = summarizeTrace(dir);
  if (summary === undefined) return;
  console.log(
    `\ntrace (${dir}): ${summary.requests} requests over ${summary.seconds.toFixed(1)} s; the ` +
      `slowest 1 % (${summary.slow}, ≥ ${summary.p99.toFixed(1)} ms) against all:`,
  );
  const percent = (share: number) => `${(share * 100).toFixed(0)} %`;
  console.table(
    Object.fromEntries(
      Object.entries(summary.kinds).map(([kind, k]) => [
        kind,
        {
          "per s": k.perSecond.toFixed(1),
          "mean ms": k.meanMs.toFixed(1),
          "max ms": k.maxMs.toFixed(1),
          "slow: share hit": percent(k.slowShare),
          "slow: ms inside": k.slowMsInside.toFixed(1),
          "all: share hit": percent(k.allShare),
          "all: ms inside": k.allMsInside.toFixed(1),
        },
      ]),
    ),
  );
  const clusters = summary.clusters
    .slice(0, 12)
    .map(([second, n]) => `${second.toFixed(1)} s: ${n}`);
  console.log(`slow requests by 100 ms of the run (busiest first): ${clusters.join(", ")}`);
}

// `node --import tsx scripts/bench/webhooks-trace.ts DIR`: the analysis again, of a kept trace.
if (process.argv[1]?.endsWith("webhooks-trace.ts") && process.argv[2] !== undefined) {
  printTrace(process.argv[2]);
}
