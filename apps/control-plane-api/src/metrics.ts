import type { DatabaseHandle } from "@keyway/db";
import type { JobQueue } from "@keyway/jobs";
import {
  type Counter,
  createMetricsRegistry,
  type Histogram,
  LATENCY_BUCKETS_SECONDS,
  type MetricsRegistry,
} from "@keyway/observability";

/**
 * The control plane's Prometheus metrics (`GET /metrics`), registered once per app. Labels come
 * from bounded sets: `route` is the matched route's pattern (`/v1/connections/:id`), never a
 * concrete path; resolution `reason` is the credential's source or the refusal code.
 */
export interface ApiMetrics {
  readonly registry: MetricsRegistry;
  /** Labels: method, route, status. */
  requests: Counter;
  /** Labels: method, route. Seconds from the request's arrival to its response. */
  duration: Histogram;
  /**
   * Labels: outcome (`resolved` | `refused`), reason (`stored-secret`, `oauth2-refresh`,
   * `resolver:<name>`, … or the refusal code).
   */
  resolutions: Counter;
  /** Labels: outcome. Seconds a credential resolution took, audit entry included. */
  resolutionDuration: Histogram;
  /** Labels: action. Seconds to append one audit entry (lock wait included). */
  auditAppend: Histogram;
}

export function createApiMetrics(registry: MetricsRegistry = createMetricsRegistry()): ApiMetrics {
  return {
    registry,
    requests: registry.counter(
      "keyway_api_requests_total",
      "HTTP requests by method, route pattern and response status.",
      ["method", "route", "status"],
    ),
    duration: registry.histogram(
      "keyway_api_request_duration_seconds",
      "Time from request arrival to response, by method and route pattern.",
      LATENCY_BUCKETS_SECONDS,
      ["method", "route"],
    ),
    resolutions: registry.counter(
      "keyway_credential_resolutions_total",
      "Credential resolutions for gateways, by outcome and source or refusal code.",
      ["outcome", "reason"],
    ),
    resolutionDuration: registry.histogram(
      "keyway_credential_resolution_duration_seconds",
      "Time to resolve a credential for a gateway (audit entry included), by outcome.",
      LATENCY_BUCKETS_SECONDS,
      ["outcome"],
    ),
    auditAppend: registry.histogram(
      "keyway_audit_append_duration_seconds",
      "Time to append one audit entry (the chain lock's wait included), by action.",
      LATENCY_BUCKETS_SECONDS,
      ["action"],
    ),
  };
}

/**
 * Scrape-time gauges of what an API or worker process holds: its database pool and the job
 * queues' depth. Read from PostgreSQL at each scrape; when the database does not answer, the
 * samples are left out (and `/readyz` says why).
 */
export function observeDatabaseAndJobs(
  registry: MetricsRegistry,
  sources: {
    database: DatabaseHandle;
    poolSize: number;
    jobs: Pick<JobQueue, "queueDepths">;
  },
): void {
  registry.gauge(
    "keyway_db_pool_size",
    "Most database connections this process opens (database.pool_size).",
    () => sources.poolSize,
  );
  registry.gaugeSamples(
    "keyway_db_connections",
    "This process's open database connections by server state (pg_stat_activity).",
    ["state"],
    async () =>
      (await sources.database.connectionStates()).map(({ state, count }) => ({
        labels: { state },
        value: count,
      })),
  );
  registry.gaugeSamples(
    "keyway_job_queue_depth",
    "Jobs waiting to run (created or retrying) per queue.",
    ["queue"],
    async () =>
      (await sources.jobs.queueDepths()).map(({ queue, jobs }) => ({
        labels: { queue },
        value: jobs,
      })),
  );
}
