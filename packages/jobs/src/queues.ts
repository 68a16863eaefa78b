import { z } from "zod";

/**
 * Every queue the platform uses, in one place: its name, the payload its jobs carry (validated by
 * the worker before a handler runs) and pg-boss's settings for it. The API enqueues through
 * these definitions inside its own transactions; the worker registers one handler per queue.
 *
 * Payloads carry ids, never data: a job reads the current rows, so running it twice (after a
 * crash, on another replica) is safe, and nothing secret ever sits in the job table.
 */
export interface QueueDefinition<P extends z.ZodType = z.ZodType> {
  readonly name: string;
  readonly payload: P;
  readonly settings: QueueSettings;
  /** Cron expression (UTC) for queues the worker fills on a schedule. */
  readonly schedule?: string;
}

export interface QueueSettings {
  /**
   * pg-boss's policy: `stately` allows one queued and one running job per singleton key (a
   * duplicate enqueue is dropped), `singleton` one running job at a time.
   */
  readonly policy: "standard" | "short" | "singleton" | "stately";
  /** Re-runs after a handler threw or its worker died (the job expired). */
  readonly retryLimit: number;
  readonly retryDelay: number;
  readonly retryBackoff: boolean;
  /** A running job not completed within this is failed (and retried): a killed worker's jobs. */
  readonly expireInSeconds: number;
}

export type QueuePayload<Q extends QueueDefinition> = z.input<Q["payload"]>;

function defineQueue<P extends z.ZodType>(queue: QueueDefinition<P>): QueueDefinition<P> {
  return queue;
}

/**
 * One stored webhook event: verify nothing again, fan it out to the matching subscriptions and
 * make each delivery's first attempt. It may run as long as two attempts
 * (`webhookProcessExpirySeconds`).
 */
export const webhookProcessQueue = defineQueue({
  name: "webhook-process",
  payload: z.strictObject({ eventId: z.string().min(1) }),
  settings: {
    policy: "stately",
    retryLimit: 8,
    retryDelay: 5,
    retryBackoff: true,
    expireInSeconds: webhookProcessExpirySeconds({
      connectTimeoutMs: 10_000,
      responseTimeoutMs: 30_000,
    }),
  },
});

/**
 * How long a fan-out job may run: the worker's fan-out loops take turns to send their batches'
 * first attempts, so a batch may wait for another's attempts before making its own — two
 * attempts' timeouts, plus 10 s for the database work around them.
 */
export function webhookProcessExpirySeconds(timeouts: {
  connectTimeoutMs: number;
  responseTimeoutMs: number;
}): number {
  return Math.ceil((2 * (timeouts.connectTimeoutMs + timeouts.responseTimeoutMs)) / 1000) + 10;
}

/**
 * One attempt to deliver an event to one subscription. Each attempt of the SPEC §8 schedule after
 * the first is its own job (enqueued with `startAfter` by the attempt before it; the first is made
 * by the `webhook-process` job, or queued here when it could not be), so pg-boss's own retries
 * only cover a worker that died mid-attempt or a handler that failed unexpectedly. `attempt` is the
 * attempt number the job makes: a job whose attempt was made already (a duplicate, or one a
 * replay overtook) does nothing.
 */
export const webhookDeliverQueue = defineQueue({
  name: "webhook-deliver",
  payload: z.strictObject({
    deliveryId: z.string().min(1),
    attempt: z.number().int().min(1),
  }),
  settings: {
    policy: "standard",
    retryLimit: 5,
    retryDelay: 5,
    retryBackoff: true,
    expireInSeconds: webhookDeliverExpirySeconds({
      connectTimeoutMs: 10_000,
      responseTimeoutMs: 30_000,
    }),
  },
});

/**
 * How long a delivery job may run before pg-boss
 * hands it to another worker: the longest an attempt can take (its connect and response timeouts, `webhooks.delivery.*`) plus 10 s for the
 * database work around it. The job of a worker that died mid-attempt comes back this long after it
 * started (plus the maintenance interval), so it should be no longer than that. Shorter would be
 * safe too (the delivery row is locked during an attempt, so a second job waits), only wasteful.
 */
export function webhookDeliverExpirySeconds(timeouts: {
  connectTimeoutMs: number;
  responseTimeoutMs: number;
}): number {
  return Math.ceil((timeouts.connectTimeoutMs + timeouts.responseTimeoutMs) / 1000) + 10;
}

/** Removes raw bodies, old events and old attempt records (`webhooks.*` retention settings). */
export const webhookRetentionQueue = defineQueue({
  name: "webhook-retention",
  payload: z.strictObject({}),
  settings: {
    policy: "singleton",
    retryLimit: 2,
    retryDelay: 60,
    retryBackoff: false,
    expireInSeconds: 600,
  },
  schedule: "17 * * * *",
});

/** Asks GitHub to redeliver App webhook deliveries Keyway never stored (SPEC §8). */
export const githubRedeliveryQueue = defineQueue({
  name: "github-redelivery",
  payload: z.strictObject({}),
  settings: {
    policy: "singleton",
    retryLimit: 1,
    retryDelay: 60,
    retryBackoff: false,
    expireInSeconds: 300,
  },
  schedule: "*/10 * * * *",
});

/**
 * Refreshes OAuth2 access tokens that expire within `oauth2.proactive_refresh_window_seconds`, so
 * a sandbox's request never waits on a token endpoint. Refreshes take the same per-connection
 * advisory lock as credential resolution, so a run racing a resolution refreshes once.
 */
export const oauth2RefreshQueue = defineQueue({
  name: "oauth2-refresh",
  payload: z.strictObject({}),
  settings: {
    policy: "singleton",
    retryLimit: 1,
    retryDelay: 30,
    retryBackoff: false,
    expireInSeconds: 300,
  },
  schedule: "* * * * *",
});

/** Probes every enabled target's endpoints and records the outcome as the target's `health`. */
export const targetHealthQueue = defineQueue({
  name: "target-health",
  payload: z.strictObject({}),
  settings: {
    policy: "singleton",
    retryLimit: 1,
    retryDelay: 60,
    retryBackoff: false,
    expireInSeconds: 300,
  },
  schedule: "*/5 * * * *",
});

/**
 * Queue settings that follow the deployment's configuration, for `createJobQueue`'s
 * `queueSettings`: the API and the worker both pass these, computed from the same settings.
 */
export function configuredQueueSettings(config: {
  webhookDelivery: { connectTimeoutMs: number; responseTimeoutMs: number };
}): Record<string, Partial<QueueSettings>> {
  return {
    [webhookProcessQueue.name]: {
      expireInSeconds: webhookProcessExpirySeconds(config.webhookDelivery),
    },
    [webhookDeliverQueue.name]: {
      expireInSeconds: webhookDeliverExpirySeconds(config.webhookDelivery),
    },
  };
}

export const QUEUES: readonly QueueDefinition[] = [
  webhookProcessQueue,
  webhookDeliverQueue,
  webhookRetentionQueue,
  githubRedeliveryQueue,
  oauth2RefreshQueue,
  targetHealthQueue,
];
