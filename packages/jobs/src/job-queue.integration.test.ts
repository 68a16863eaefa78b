import { createDatabase, type DatabaseHandle } from "@keyway/db";
import { createTestDatabase, type TestDatabase } from "@keyway/test-harness";
import { sql } from "drizzle-orm";
import PgBoss from "pg-boss";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createJobQueue, JOB_SCHEMA, type JobQueue } from "./job-queue";
import { QUEUES, webhookDeliverQueue, webhookProcessQueue } from "./queues";

let database: TestDatabase;
let handle: DatabaseHandle;
let producer: JobQueue;

beforeAll(async () => {
  database = await createTestDatabase("jobs");
  handle = createDatabase(database.url, { max: 4 });
  producer = createJobQueue(handle, { role: "producer" });
  // Two processes preparing at once (API and worker starting together) must both succeed.
  const other = createJobQueue(handle, { role: "producer" });
  await Promise.all([producer.prepare(), other.prepare()]);
  await other.stop();
});
afterAll(async () => {
  await producer?.stop();
  await handle?.close();
  await database?.drop();
});

async function jobsOf(queue: string) {
  return handle.db.execute<{ id: string; data: unknown; state: string; singleton_key: string }>(
    sql`select id, data, state, singleton_key from ${sql.identifier(JOB_SCHEMA)}.job where name = ${queue}`,
  );
}

describe("createJobQueue", () => {
  it("creates every queue with its settings", async () => {
    for (const queue of QUEUES) {
      const stored = await producer.boss.getQueue(queue.name);
      expect(stored, queue.name).toMatchObject({
        name: queue.name,
        policy: queue.settings.policy,
        retryLimit: queue.settings.retryLimit,
      });
    }
  });

  it("takes settings that follow configuration from the process preparing the queues", async () => {
    const configured = createJobQueue(handle, {
      role: "producer",
      queueSettings: { [webhookDeliverQueue.name]: { expireInSeconds: 7 } },
    });
    await configured.prepare();
    try {
      expect(await configured.boss.getQueue(webhookDeliverQueue.name)).toMatchObject({
        expireInSeconds: 7,
        retryLimit: webhookDeliverQueue.settings.retryLimit,
      });
    } finally {
      await configured.stop();
    }
  });

  it("inserts a job in the caller's transaction: rolled back with it, committed with it", async () => {
    await handle.db
      .transaction(async (tx) => {
        await producer.enqueue(tx, webhookDeliverQueue, {
          deliveryId: "whd_rolled_back",
          attempt: 1,
        });
        throw new Error("roll back");
      })
      .catch(() => {});
    await handle.db.transaction(async (tx) => {
      const id = await producer.enqueue(tx, webhookDeliverQueue, {
        deliveryId: "whd_committed",
        attempt: 1,
      });
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
    });
    const jobs = await jobsOf(webhookDeliverQueue.name);
    expect(jobs.map((job) => job.data)).toEqual([{ deliveryId: "whd_committed", attempt: 1 }]);
  });

  it("refuses a payload that does not match the queue's schema", async () => {
    await expect(
      producer.enqueue(handle.db, webhookProcessQueue, { eventId: "" }),
    ).rejects.toThrow();
  });

  it("keeps one queued job per singleton key on a stately queue", async () => {
    const ids = await Promise.all(
      Array.from({ length: 10 }, () =>
        handle.db.transaction((tx) =>
          producer.enqueue(
            tx,
            webhookProcessQueue,
            { eventId: "whe_same" },
            { singletonKey: "whe_same" },
          ),
        ),
      ),
    );
    expect(ids.filter((id) => id !== null)).toHaveLength(1);
    const jobs = await jobsOf(webhookProcessQueue.name);
    expect(jobs.filter((job) => job.singleton_key === "whe_same")).toHaveLength(1);
  });

  it("hands a job whose worker died to another worker once it expires", async () => {
    const worker = createJobQueue(handle, { role: "worker", maintenanceIntervalSeconds: 1 });
    await worker.prepare();
    try {
      const queue = "test-expiring";
      await worker.boss.createQueue(queue, {
        name: queue,
        policy: "standard",
        retryLimit: 2,
        retryDelay: 0,
        expireInSeconds: 1,
      });
      const id = await worker.boss.send(queue, { n: 1 });
      // A worker fetches the job, then dies: it never completes it.
      const [taken] = await worker.boss.fetch(queue);
      expect(taken?.id).toBe(id);
      let again: { id: string } | undefined;
      for (let i = 0; i < 100 && again === undefined; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        [again] = await worker.boss.fetch(queue);
      }
      expect(again?.id).toBe(id);
    } finally {
      await worker.stop(1000);
    }
  });
});

describe("on the embedded server's Unix-domain socket", () => {
  // The run's server, like `pnpm start`'s, is reached through its socket (libpq's `host`
  // parameter): inet_server_addr() is NULL for a session that did not come over TCP.
  const socketOnly = "select inet_server_addr() is null as socket";

  it("runs Keyway's queue, whose pg-boss shares the handle's postgres.js client", async () => {
    expect(database.url).toContain("?host=%2F");
    const [row] = await handle.sql.unsafe<{ socket: boolean }[]>(socketOnly);
    expect(row?.socket).toBe(true);
    expect(await producer.boss.getQueue(webhookProcessQueue.name)).not.toBeNull();
  });

  it("lets pg-boss open its own connection (node-postgres) from the same URL", async () => {
    const own = new PgBoss({
      connectionString: database.url,
      schema: "pgboss_own_connection",
      supervise: false,
      schedule: false,
    });
    own.on("error", () => {});
    await own.start();
    try {
      await own.createQueue("socket-probe");
      const id = await own.send("socket-probe", { n: 1 });
      expect((await own.fetch("socket-probe"))[0]?.id).toBe(id);
      const { rows } = await own.getDb().executeSql(socketOnly, []);
      expect(rows[0]?.socket).toBe(true);
    } finally {
      await own.stop({ graceful: false, wait: true });
    }
  });
});
