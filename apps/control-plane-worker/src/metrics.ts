import {
  type Counter,
  createMetricsRegistry,
  type Histogram,
  LATENCY_BUCKETS_SECONDS,
  type MetricsRegistry,
} from "@keyway/observability";

/**
 * The worker's Prometheus metrics, served on `worker.metrics_port` (`GET /metrics`). Labels are
 * queue names and outcomes: bounded sets. The database pool and queue depth gauges are the
 * API's (`observeDatabaseAndJobs`), registered on the same registry by `main.ts`.
 */
export interface WorkerMetrics {
  readonly registry: MetricsRegistry;
  /** Labels: queue, outcome (`completed` | `retried` | `failed` | `dropped`). */
  jobs: Counter;
  /** Labels: queue. Seconds a job's handler ran. */
  duration: Histogram;
}

export function createWorkerMetrics(
  registry: MetricsRegistry = createMetricsRegistry(),
): WorkerMetrics {
  return {
    registry,
    jobs: registry.counter(
      "keyway_worker_jobs_total",
      "Jobs run by queue and outcome (retried: failed with tries left; failed: the last try).",
      ["queue", "outcome"],
    ),
    duration: registry.histogram(
      "keyway_worker_job_duration_seconds",
      "Time a job's handler ran, by queue.",
      LATENCY_BUCKETS_SECONDS,
      ["queue"],
    ),
  };
}
