import type { DatabaseHandle, Executor } from "@keyway/db";
import PgBoss from "pg-boss";
import { QUEUES, type QueueDefinition, type QueuePayload, type QueueSettings } from "./queues";
import { clientExecutor, type PgBossSqlExecutor, sqlExecutor } from "./sql-executor";

/** pg-boss keeps its tables in a schema of its own on the platform's database. */
export const JOB_SCHEMA = "pgboss";

/** Session advisory lock taken while a process creates or migrates the job schema and queues. */
const PREPARE_LOCK_KEY = 0x6b77_6a62;

export interface JobQueueOptions {
  /**
   * `producer` (the API): enqueues only. `worker`: also runs pg-boss's maintenance (expiring jobs
   * of dead workers, archiving) and its cron scheduler.
   */
  role: "producer" | "worker";
  /** How often the worker's maintenance runs (finds expired jobs). pg-boss's default is 120 s. */
  maintenanceIntervalSeconds?: number;
  /**
   * Settings that depend on configuration, by queue name (the deliver queue's expiry follows the
   * delivery timeouts). Every process preparing the queues must pass the same values: the last one
   * to prepare wins.
   */
  queueSettings?: Readonly<Record<string, Partial<QueueSettings>>>;
}

export interface EnqueueOptions {
  /** Not before this instant (a later attempt of the delivery schedule). */
  startAfter?: Date;
  /** With a `stately` queue, one queued and one running job per key; duplicates are dropped. */
  singletonKey?: string;
}

export interface JobQueue {
  /** pg-boss itself, for the worker's `work()` registrations and tests. */
  readonly boss: PgBoss;
  /**
   * Creates or migrates pg-boss's schema and creates every queue of `QUEUES` (idempotent; several
   * processes may run it at once).
   */
  prepare(): Promise<void>;
  /**
   * Inserts a job through `executor` — pass the caller's transaction, so the job exists exactly
   * when the rows it is about commit. Null when a `stately` duplicate was dropped.
   */
  enqueue<Q extends QueueDefinition>(
    executor: Executor,
    queue: Q,
    payload: QueuePayload<Q>,
    options?: EnqueueOptions,
  ): Promise<string | null>;
  /**
   * Inserts several jobs of one queue in one statement through `executor` (pg-boss's `insert`),
   * as `enqueue` does one (`stately` duplicates are dropped): a batch of webhook ingests commits
   * its jobs with its events.
   */
  enqueueMany<Q extends QueueDefinition>(
    executor: Executor,
    queue: Q,
    jobs: readonly { payload: QueuePayload<Q>; options?: EnqueueOptions }[],
  ): Promise<void>;
  /** Jobs waiting to run (created or retrying, not yet active) per queue: the queue depth. */
  queueDepths(): Promise<{ queue: string; jobs: number }[]>;
  /** Stops pg-boss (a worker lets running jobs finish, up to `timeoutMs`). */
  stop(timeoutMs?: number): Promise<void>;
}

export function createJobQueue(database: DatabaseHandle, options: JobQueueOptions): JobQueue {
  const worker = options.role === "worker";
  const boss = new PgBoss({
    db: clientExecutor(database.sql),
    schema: JOB_SCHEMA,
    migrate: true,
    supervise: worker,
    schedule: worker,
    ...(options.maintenanceIntervalSeconds !== undefined
      ? { maintenanceIntervalSeconds: options.maintenanceIntervalSeconds }
      : {}),
  });
  // pg-boss reports maintenance failures (a database outage) as events; without a listener an
  // `error` event would crash the process. The worker logs them (see its own setup).
  boss.on("error", () => {});
  let started: Promise<void> | undefined;

  function prepare(): Promise<void> {
    if (started !== undefined) return started;
    started = (async () => {
      // API and worker processes start together: pg-boss's schema creation and its queue
      // partitions deadlock when two run at once, so processes take turns (a session lock held
      // on a reserved connection while this process prepares).
      const lock = await database.sql.reserve();
      try {
        await lock`select pg_advisory_lock(${PREPARE_LOCK_KEY})`;
        await boss.start();
        for (const queue of QUEUES) {
          const settings = {
            name: queue.name,
            ...queue.settings,
            ...options.queueSettings?.[queue.name],
          };
          if ((await boss.getQueue(queue.name)) === null) {
            await boss.createQueue(queue.name, settings);
          } else {
            await boss.updateQueue(queue.name, settings);
          }
        }
      } finally {
        await lock`select pg_advisory_unlock(${PREPARE_LOCK_KEY})`.catch(() => {});
        lock.release();
      }
    })();
    return started;
  }

  return {
    boss,
    prepare,

    async enqueue(executor, queue, payload, enqueueOptions = {}) {
      const data = queue.payload.parse(payload);
      // Without its queue a job would be dropped silently: make sure the queues exist first.
      await prepare();
      const db: PgBossSqlExecutor = sqlExecutor(executor);
      return boss.send(queue.name, data as object, {
        db,
        ...(enqueueOptions.startAfter ? { startAfter: enqueueOptions.startAfter } : {}),
        ...(enqueueOptions.singletonKey ? { singletonKey: enqueueOptions.singletonKey } : {}),
      });
    },

    async enqueueMany(executor, queue, jobs) {
      if (jobs.length === 0) return;
      const rows = jobs.map(({ payload, options = {} }) => ({
        name: queue.name,
        data: queue.payload.parse(payload) as object,
        ...(options.startAfter ? { startAfter: options.startAfter.toISOString() } : {}),
        ...(options.singletonKey ? { singletonKey: options.singletonKey } : {}),
      }));
      await prepare();
      await boss.insert(rows, { db: sqlExecutor(executor) });
    },

    queueDepths: () =>
      Promise.all(
        QUEUES.map(async (queue) => ({
          queue: queue.name,
          jobs: await boss.getQueueSize(queue.name, { before: "active" }),
        })),
      ),

    async stop(timeoutMs = 30_000) {
      await boss.stop({ graceful: true, timeout: timeoutMs, wait: true, close: false });
    },
  };
}
