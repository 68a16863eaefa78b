import type { KeywayConfig } from "@keyway/config";
import type { Logger } from "@keyway/control-plane-api/logger";
import type { KeyRing } from "@keyway/crypto";
import type { DatabaseHandle } from "@keyway/db";
import type { Clock, FetchLike, IntegrationRegistry } from "@keyway/integrations-core";
import type { JobQueue } from "@keyway/jobs";
import type { GitHubRedeliverySettings } from "./jobs/github-redelivery/handler";
import type { OAuth2RefreshSettings } from "./jobs/oauth2-refresh/handler";
import type { TargetHealthSettings } from "./jobs/target-health/handler";
import type { SubscriberClient } from "./jobs/webhook-deliver/subscriber-request";
import type { WebhookRetentionSettings } from "./jobs/webhook-retention/handler";
import type { WorkerMetrics } from "./metrics";

/**
 * Everything the worker's jobs need, passed in explicitly (as the API's `AppDeps`): tests build
 * these from real components, `main.ts` from the config file.
 */
export interface WorkerDeps {
  database: DatabaseHandle;
  jobs: JobQueue;
  keyRing: KeyRing;
  registry: IntegrationRegistry;
  clock: Clock;
  logger: Logger;
  /** Job counts and durations (`/metrics`); absent in tests that do not read them. */
  metrics?: WorkerMetrics;
  /** Outbound HTTP to providers (GitHub redelivery, OAuth refresh). */
  fetch: FetchLike;
  /** A number in [0, 1): the jitter of the delivery retry schedule (`Math.random` in production). */
  random: () => number;
  /** Kept-alive connections to webhook subscribers (closed when the worker stops). */
  subscribers: SubscriberClient;
  settings: WorkerSettings;
}

export interface WorkerSettings {
  /** Jobs of each queue run at once. */
  concurrency: number;
  pollingIntervalSeconds: number;
  /** Running jobs get this long to finish on stop; then they are released to other workers. */
  shutdownTimeoutMs: number;
  retention: WebhookRetentionSettings;
  githubRedelivery: GitHubRedeliverySettings;
  webhookDelivery: WebhookDeliverySettings;
  oauth2: OAuth2RefreshSettings;
  targetHealth: TargetHealthSettings;
}

/** The worker's settings as `keyway.toml` gives them (`[worker]`, `[webhooks]`, `[oauth2]`). */
export function workerSettings(
  config: Pick<KeywayConfig, "worker" | "webhooks" | "oauth2">,
): WorkerSettings {
  const { worker, webhooks, oauth2 } = config;
  return {
    concurrency: worker.concurrency,
    pollingIntervalSeconds: worker.polling_interval_seconds,
    shutdownTimeoutMs: worker.shutdown_timeout_ms,
    retention: {
      rawBodyRetentionDays: webhooks.raw_body_retention_days,
      dedupeRetentionHours: webhooks.dedupe_retention_hours,
      eventRetentionDays: webhooks.event_retention_days,
      attemptRetentionDays: webhooks.attempt_retention_days,
      batchSize: webhooks.retention_batch_size,
    },
    githubRedelivery: {
      lookbackHours: webhooks.github_redelivery_lookback_hours,
      maxPages: webhooks.github_redelivery_max_pages,
      maxPerRun: webhooks.github_redelivery_max_per_run,
    },
    webhookDelivery: {
      connectTimeoutMs: webhooks.delivery.connect_timeout_ms,
      responseTimeoutMs: webhooks.delivery.response_timeout_ms,
      allowPrivateSubscribers: webhooks.allow_private_subscribers,
    },
    oauth2: {
      proactiveRefreshWindowSeconds: oauth2.proactive_refresh_window_seconds,
      tokenRequestTimeoutMs: oauth2.token_request_timeout_ms,
    },
    targetHealth: { timeoutMs: worker.target_health_timeout_ms },
  };
}

/** `webhooks.delivery.*` and `webhooks.allow_private_subscribers`. */
export interface WebhookDeliverySettings {
  connectTimeoutMs: number;
  responseTimeoutMs: number;
  /** Subscriber URLs may resolve to loopback, link-local and private addresses. */
  allowPrivateSubscribers: boolean;
}
