import type { Counter, Histogram, MetricsRegistry } from "./metrics";

/** The gateway's Prometheus metrics (SPEC §7 "Observability"), registered once per gateway. */
export interface GatewayMetrics {
  /** Labels: route (id, or `unmanaged` / `none`), status. */
  requests: Counter;
  /** Labels: route. Seconds from the request's arrival to its last byte relayed (or refusal). */
  duration: Histogram;
  /** Labels: result (`hit` | `miss`). */
  credentialCache: Counter;
  /**
   * Labels: route, code (`upstream_unreachable`, `upstream_tls_error`, `upstream_timeout`,
   * `upstream_reset`).
   */
  upstreamErrors: Counter;
  /** Labels: mode (`intercepted` | `spliced` | `refused`). */
  tunnels: Counter;
  /** Labels: route. Requests refused with 429 by the route's token bucket. */
  rateLimited: Counter;
  /** Labels: upstream (origin), state (`open` | `half_open` | `closed`): state changes. */
  circuitTransitions: Counter;
  /**
   * Labels: location (`header` | `body`). Occurrences of an injected credential masked in
   * responses; no route label, so it stays small (the `secret_scrubbed` log line names the route).
   */
  scrubbed: Counter;
}

const LATENCY_BUCKETS_SECONDS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

export function createGatewayMetrics(registry: MetricsRegistry): GatewayMetrics {
  return {
    requests: registry.counter(
      "keyway_gateway_requests_total",
      "Proxied requests by route and response status.",
      ["route", "status"],
    ),
    duration: registry.histogram(
      "keyway_gateway_request_duration_seconds",
      "Time from request arrival to the end of the response, by route.",
      LATENCY_BUCKETS_SECONDS,
      ["route"],
    ),
    credentialCache: registry.counter(
      "keyway_gateway_credential_cache_total",
      "Credential cache lookups by result.",
      ["result"],
    ),
    upstreamErrors: registry.counter(
      "keyway_gateway_upstream_errors_total",
      "Requests that failed at the upstream, by route and error code.",
      ["route", "code"],
    ),
    tunnels: registry.counter(
      "keyway_gateway_tunnels_total",
      "CONNECT tunnels by how they were handled.",
      ["mode"],
    ),
    rateLimited: registry.counter(
      "keyway_gateway_rate_limited_total",
      "Requests refused by a route's rate limit.",
      ["route"],
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
  };
}
