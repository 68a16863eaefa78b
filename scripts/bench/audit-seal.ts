/**
 * The audit sealer's cost in PostgreSQL (SPEC §6.6), alone: audit entries appended at the webhook
 * ingest's rate (`webhook.received`-shaped, batches of several per transaction, as the event
 * writer appends them) onto a durable embedded PostgreSQL while the sealer runs on its timer, as
 * every API replica runs it.
 *
 *   $N24 --import tsx scripts/bench/audit-seal.ts [--rate N] [--duration S] [--batch N]
 *                                                 [--organizations N] [--json FILE]
 *
 * Reported: PostgreSQL's CPU per sealed entry (all its processes, and the sealer's own backend
 * alone), the sealer's statements from pg_stat_statements (calls, rows, mean and max ms), the
 * appends' latency (the writers' transactions, which the sealer's row locks and I/O can slow),
 * WAL bytes per entry, and the dead tuples left in the audit tables.
 */
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createKeyRing, generateMasterKey } from "@keyway/crypto";
import { createDatabase, runMigrations, startEmbeddedPostgres } from "@keyway/db";
import { createAuditSealer } from "../../apps/control-plane-api/src/audit/sealer";
import {
  type AuditEntryInput,
  appendAuditEntries,
  verifyAuditChain,
} from "../../apps/control-plane-api/src/audit/service";
import { createLogger } from "../../apps/control-plane-api/src/logger";
import { jsonOutputPath, machineFacts, percentile, writeJson } from "./bench-lib";
import { childPids, cpuMs } from "./processes";

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at === -1 ? fallback : Number(process.argv[at + 1]);
}

const rate = flag("--rate", 1500);
const durationS = flag("--duration", 20);
const warmupS = flag("--warmup", 3);
const batch = flag("--batch", 6);
const organizations = flag("--organizations", 20);

const root = await mkdtemp(join(tmpdir(), "keyway-audit-seal-"));
// initdb runs as the postgres user when this runs as root: it must reach the data directory.
await chmod(root, 0o755);
const postgres = await startEmbeddedPostgres({
  dataDir: join(root, "pg"),
  durable: true,
  settings: {
    shared_preload_libraries: "pg_stat_statements",
    "pg_stat_statements.track": "all",
  },
});
try {
  await postgres.createDatabase("keyway");
  const url = postgres.url("keyway");
  await runMigrations(url);
  const writers = createDatabase(url, { max: 8 });
  // The sealer on its own connection, so its backend's CPU can be read alone.
  const sealerDb = createDatabase(url, { max: 1 });
  await writers.sql`create extension if not exists pg_stat_statements`;
  const [{ pid: sealerPid } = { pid: 0 }] = await sealerDb.sql<
    { pid: number }[]
  >`select pg_backend_pid() as pid`;
  // The links live in `audit_seals` (insert-only sealing) or in audit_log's own columns (before).
  const [layout] = await writers.sql<{ seals: boolean }[]>`
    select to_regclass('audit_seals') is not null as seals`;
  const sealedCountSql = layout?.seals
    ? "select count(*)::int as n from audit_seals"
    : "select count(*)::int as n from audit_log where hash is not null";
  const keyRing = createKeyRing({ current: 1, keys: [{ version: 1, key: generateMasterKey() }] });
  const clock = { now: () => new Date() };
  const sealer = createAuditSealer({
    db: sealerDb.db,
    keyRing,
    clock,
    logger: createLogger({ level: "warn" }),
    intervalMs: 200,
    checkpointIntervalMs: 5000,
  });

  let appended = 0;
  const latencies: number[] = [];
  let measuring = false;
  let n = 0;
  const entry = (): AuditEntryInput => {
    n++;
    return {
      organizationId: `org_bench${String(n % organizations).padStart(22, "0")}`,
      actor: "provider",
      action: "webhook.received",
      subjectType: "webhook_event",
      subjectId: `whev_${String(n).padStart(26, "0")}`,
      details: {
        targetKey: "bench-github",
        eventType: "github.pull_request.opened",
        deliveryId: `${n}-0000-0000-0000-000000000000`,
        connectionId: `conn_${String(n % organizations).padStart(26, "0")}`,
      },
    };
  };
  const inFlight = new Set<Promise<void>>();
  const tickMs = 10;
  const perTick = (rate * tickMs) / 1000;
  let owed = 0;
  const appendTimer = setInterval(() => {
    owed += perTick;
    while (owed >= batch) {
      owed -= batch;
      const entries = Array.from({ length: batch }, entry);
      const started = performance.now();
      const write = writers.db
        .transaction((tx) => appendAuditEntries(tx, clock, entries))
        .then(() => {
          appended += entries.length;
          if (measuring) latencies.push(performance.now() - started);
        });
      inFlight.add(write);
      void write.finally(() => inFlight.delete(write));
    }
  }, tickMs);

  await new Promise((resolve) => setTimeout(resolve, warmupS * 1000));
  await sealer.sealNow();
  await writers.sql`select pg_stat_statements_reset()`;
  await writers.sql`select pg_stat_reset()`;
  const pgPids = () => [postgres.pid ?? 0, ...childPids(postgres.pid ?? 0)];
  const [walBefore] = await writers.sql<{ lsn: string }[]>`select pg_current_wal_lsn() as lsn`;
  const sealedBefore = await sealedCount();
  const cpuBefore = { pg: cpuMs(pgPids()), sealer: cpuMs([sealerPid]) };
  const appendedBefore = appended;
  measuring = true;
  await new Promise((resolve) => setTimeout(resolve, durationS * 1000));
  measuring = false;
  const cpuAfter = { pg: cpuMs(pgPids()), sealer: cpuMs([sealerPid]) };
  const sealedAfter = await sealedCount();
  const [wal] = await writers.sql<{ bytes: string }[]>`
    select pg_wal_lsn_diff(pg_current_wal_lsn(), ${walBefore!.lsn}::pg_lsn)::bigint as bytes`;
  const appendedInWindow = appended - appendedBefore;
  clearInterval(appendTimer);
  await Promise.all(inFlight);

  const statements = await writers.sql<
    {
      calls: string;
      rows: string;
      mean_ms: number;
      max_ms: number;
      total_ms: number;
      query: string;
    }[]
  >`
    select calls, rows, round(mean_exec_time::numeric, 2)::float as mean_ms,
      round(max_exec_time::numeric, 2)::float as max_ms,
      round(total_exec_time::numeric, 1)::float as total_ms,
      left(regexp_replace(query, '\\s+', ' ', 'g'), 90) as query
    from pg_stat_statements
    where query ~* 'audit_(log|seal|checkpoint)' and query !~* '^\\s*insert into audit_log'
      and query !~* 'pg_stat'
    order by total_exec_time desc limit 8`;
  const appendStatement = await writers.sql<
    { calls: string; rows: string; mean_ms: number; max_ms: number; total_ms: number }[]
  >`
    select calls, rows, round(mean_exec_time::numeric, 2)::float as mean_ms,
      round(max_exec_time::numeric, 2)::float as max_ms,
      round(total_exec_time::numeric, 1)::float as total_ms
    from pg_stat_statements where query ~* '^\\s*insert into audit_log'`;
  const tables = await writers.sql<
    {
      relname: string;
      n_tup_ins: string;
      n_tup_upd: string;
      n_tup_hot_upd: string;
      n_dead_tup: string;
    }[]
  >`
    select relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_dead_tup from pg_stat_user_tables
    where relname like 'audit%' order by relname`;

  await sealer.close();
  const verification = await verifyAuditChain(writers.db, keyRing);
  const sealed = sealedAfter - sealedBefore;
  const figures = {
    rate,
    durationS,
    batch,
    organizations,
    appendedPerSecond: Math.round(appendedInWindow / durationS),
    sealed,
    postgresCpuMsPerSealedEntry: Number(((cpuAfter.pg - cpuBefore.pg) / sealed).toFixed(4)),
    postgresCpuPercent: Math.round(((cpuAfter.pg - cpuBefore.pg) / (durationS * 1000)) * 100),
    sealerBackendCpuMsPerSealedEntry: Number(
      ((cpuAfter.sealer - cpuBefore.sealer) / sealed).toFixed(4),
    ),
    walBytesPerEntry: Math.round(Number(wal!.bytes) / appendedInWindow),
    appendTransactionMs: {
      p50: Number(percentile(latencies, 50).toFixed(2)),
      p99: Number(percentile(latencies, 99).toFixed(2)),
      max: Number(Math.max(...latencies).toFixed(2)),
    },
    appendStatement: appendStatement[0],
    sealerStatements: statements,
    tables,
    verification,
  };
  console.log(JSON.stringify(figures, null, 2));
  writeJson(jsonOutputPath(), {
    ...figures,
    ...machineFacts(["audit-seal", ...process.argv.slice(2)].join(" ")),
  });
  await Promise.all([writers.close(), sealerDb.close()]);

  async function sealedCount(): Promise<number> {
    const [row] = await writers.sql.unsafe<{ n: number }[]>(sealedCountSql);
    return row?.n ?? 0;
  }
} finally {
  await postgres.stop();
  await rm(root, { recursive: true, force: true });
}
process.exit(0);
