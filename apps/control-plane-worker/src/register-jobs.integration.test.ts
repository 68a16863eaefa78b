import { createHmac, randomUUID } from "node:crypto";
import { seedTarget } from "@keyway/control-plane-api/internal/fixtures";
import {
  createTestApp,
  createTestClock,
  type TestApp,
} from "@keyway/control-plane-api/testing/test-app";
import { webhookEvents } from "@keyway/db";
import { githubRedeliveryQueue, type QueueDefinition, webhookRetentionQueue } from "@keyway/jobs";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { registerJobs } from "./register-jobs";
import { createTestWorkerDeps, startTestWorker } from "./testing/test-worker";

const clock = createTestClock();
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ clock });
});
afterAll(async () => {
  await t.close();
});

describe("the worker's scheduled jobs", () => {
  it("schedules retention, GitHub reconciliation, OAuth2 refresh and health probes, and runs what the schedule sends", async () => {
    const deps = createTestWorkerDeps(t);
    const worker = await startTestWorker(deps);
    try {
      const schedules = await deps.jobs.boss.getSchedules();
      expect(
        schedules.map((schedule) => [schedule.name, schedule.cron, schedule.options?.tz]).sort(),
      ).toEqual(
        [
          ["github-redelivery", "*/10 * * * *", "UTC"],
          ["oauth2-refresh", "* * * * *", "UTC"],
          ["target-health", "*/5 * * * *", "UTC"],
          ["webhook-retention", "17 * * * *", "UTC"],
        ].sort(),
      );

      // An event received 8 days ago still has its body until a retention job runs.
      const secret = "gh-secret-schedule";
      const github = await seedTarget(t.deps.database.db, t.deps, {
        variantId: "github-cloud",
        secrets: { webhookSecret: secret },
      });
      const body = JSON.stringify({ action: "opened" });
      clock.set(new Date(Date.now() - 8 * 24 * 3_600_000));
      const response = await t.app.request(`/p/integration/webhooks/${github.targetKey}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-github-event": "issues",
          "x-github-delivery": randomUUID(),
          "x-hub-signature-256": `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`,
        },
        body,
      });
      clock.set(new Date());
      expect(response.status).toBe(202);
      const { id } = (await response.json()) as { id: string };

      // What cron sends: an empty payload on each queue.
      await deps.jobs.boss.send(githubRedeliveryQueue.name, {});
      await deps.jobs.boss.send(webhookRetentionQueue.name, {});
      let rawBody: Buffer | null | undefined;
      for (let i = 0; i < 100; i++) {
        const [row] = await t.deps.database.db
          .select({ rawBody: webhookEvents.rawBody })
          .from(webhookEvents)
          .where(eq(webhookEvents.id, id));
        rawBody = row?.rawBody;
        if (rawBody === null) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(rawBody).toBeNull();
    } finally {
      await worker.stop();
    }
  });
});

describe("a worker with jobs waiting", () => {
  it("runs them one after another without waiting the polling interval between them", async () => {
    const deps = createTestWorkerDeps(t);
    await deps.jobs.prepare();
    const queue: QueueDefinition = {
      name: "test-back-to-back",
      payload: z.strictObject({ n: z.number() }),
      settings: {
        policy: "standard",
        retryLimit: 0,
        retryDelay: 0,
        retryBackoff: false,
        expireInSeconds: 60,
      },
    };
    const { boss } = deps.jobs;
    await boss.createQueue(queue.name, { name: queue.name, ...queue.settings });
    for (const n of [1, 2, 3]) await boss.send(queue.name, { n });
    const ran: number[] = [];
    // One worker polling once a minute: the second and third jobs are found only if the worker
    // looks again right after each job (otherwise the test times out waiting for them).
    await registerJobs(
      boss,
      [{ queue, run: async ({ n }: { n: number }) => ran.push(n) }],
      { concurrency: 1, pollingIntervalSeconds: 60 },
      deps.logger,
    );
    try {
      for (let i = 0; i < 150 && ran.length < 3; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(ran).toEqual([1, 2, 3]);
    } finally {
      await deps.jobs.stop(1_000);
    }
  });
});

describe("a worker fetching jobs in batches", () => {
  it("fails a job of a batch alone: its neighbours complete, run together or one by one", async () => {
    const deps = createTestWorkerDeps(t);
    await deps.jobs.prepare();
    const queue: QueueDefinition = {
      name: "test-batch-isolation",
      payload: z.strictObject({ n: z.number() }),
      settings: {
        policy: "standard",
        retryLimit: 0,
        retryDelay: 0,
        retryBackoff: false,
        expireInSeconds: 60,
      },
    };
    const { boss } = deps.jobs;
    await boss.createQueue(queue.name, { name: queue.name, ...queue.settings });
    const ids = new Map<number, string>();
    for (const n of [1, 2, 3, 4]) ids.set(n, (await boss.send(queue.name, { n })) ?? "");
    const ran: number[] = [];
    await registerJobs(
      boss,
      [
        {
          queue,
          run: async ({ n }: { n: number }) => {
            if (n === 3) throw new Error("job 3 fails");
            ran.push(n);
          },
          // The batch fails as a whole (job 3 is in it): each job then runs alone.
          runBatch: async (payloads: { n: number }[]) => {
            if (payloads.some(({ n }) => n === 3)) throw new Error("job 3 fails");
            for (const { n } of payloads) ran.push(n);
          },
        },
      ],
      { concurrency: 4, pollingIntervalSeconds: 60 },
      deps.logger,
    );
    try {
      const states = new Map<number, string>();
      for (let i = 0; i < 150; i++) {
        for (const [n, id] of ids) {
          const job = await boss.getJobById(queue.name, id);
          if (job !== null) states.set(n, job.state);
        }
        if ([...states.values()].every((state) => state === "completed" || state === "failed")) {
          if (states.size === 4) break;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(Object.fromEntries(states)).toEqual({
        1: "completed",
        2: "completed",
        3: "failed",
        4: "completed",
      });
      expect(ran.sort()).toEqual([1, 2, 4]);
    } finally {
      await deps.jobs.stop(1_000);
    }
  });
});
