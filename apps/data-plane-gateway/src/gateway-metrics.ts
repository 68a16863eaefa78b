import type { Counter, Histogram, MetricsRegistry } from "@keyway/observability";

/**
 * The gateway's Prometheus metrics (SPEC §7 "Observability"), registered once per gateway.
 *
 * Every label comes from a bounded set, so `/metrics` does not grow with sessions, plans or
 * routes: `upstream` is a route's upstream origin, which comes from the operator's target
 * configuration (a plan's routes only ever name the origins of configured targets), or
 * `unmanaged` / `none`; never a route id, binding id or session id (those are in the access log).
 */
export interface GatewayMetrics {
  /** Labels: upstream (origin, or `unmanaged` / `none`), status. */
  requests: Counter;
  /** Labels: upstream. Seconds from the request's arrival to its last byte relayed (or refusal). */
  duration: Histogram;
  /** Labels: result (`hit` | `miss`). */
  credentialCache: Counter;
  /**
   * Labels: upstream, code (`upstream_unreachable`, `upstream_tls_error`, `upstream_timeout`,
   * `upstream_reset`).
   */
  upstreamErrors: Counter;
  /** Labels: mode (`intercepted` | `spliced` | `refused`). */
  tunnels: Counter;
  /** Labels: upstream. Requests refused with 429 by the route's token bucket. */
  rateLimited: Counter;
  /** Labels: upstream (origin), state (`open` | `half_open` | `closed`): state changes. */
  circuitTransitions: Counter;
  /**
   * Labels: location (`header` | `body`). Occurrences of an injected credential masked in
   * responses; no route label, so it stays small (the `secret_scrubbed` log line names the route).
   */
  scrubbed: Counter;
  /** Labels: result (`ok` | `failed`). Plans fetched from the control plane. */
  planFetches: Counter;
}

const LATENCY_BUCKETS_SECONDS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

export function createGatewayMetrics(registry: MetricsRegistry): GatewayMetrics {
  return {
    requests: registry.counter(
      "keyway_gateway_requests_total",
      "Proxied requests by upstream origin and response status.",
      ["upstream", "status"],
    ),
    duration: registry.histogram(
      "keyway_gateway_request_duration_seconds",
      "Time from request arrival to the end of the response, by upstream origin.",
      LATENCY_BUCKETS_SECONDS,
      ["upstream"],
    ),
    credentialCache: registry.counter(
      "keyway_gateway_credential_cache_total",
      "Credential cache lookups by result.",
      ["result"],
    ),
    upstreamErrors: registry.counter(
      "keyway_gateway_upstream_errors_total",
      "Requests that failed at the upstream, by upstream origin and error code.",
      ["upstream", "code"],
    ),
    tunnels: registry.counter(
      "keyway_gateway_tunnels_total",
      "CONNECT tunnels by how they were handled.",
      ["mode"],
    ),
    rateLimited: registry.counter(
      "keyway_gateway_rate_limited_total",
      "Requests refused by a route's rate limit, by upstream origin.",
      ["upstream"],
    ),
    circuitTransitions: registry.counter(
      "keyway_gateway_circuit_transitions_total",
      "Circuit breaker state changes by upstream origin and new state.",
      ["upstream", "state"],
    ),
    scrubbed: registry.counter(
      "keyway_gateway_scrubbed_total",
      "Occurrences of an injected credential masked in responses, by where they were found.",
      ["location"],
    ),
    planFetches: registry.counter(
      "keyway_gateway_plan_fetches_total",
      "Plans fetched from the control plane, by result.",
      ["result"],
    ),
  };
}
