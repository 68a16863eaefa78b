import { createLineWriter, type Logger, type TraceParent } from "@keyway/observability";
import type { GatewayMetrics } from "../gateway-metrics";

/**
 * Stage 7 — record: one JSON log line and the metrics for each request or tunnel (SPEC §7
 * "Observability"). The record holds ids, counts and codes only: never a token, a credential, a
 * header value or a path (paths and queries may carry secrets of their own). The one text it may
 * carry is `reason`, why an upstream's TLS was refused (Node's code and message).
 */

export type ExchangeKind = "http" | "intercepted" | "tunnel";

export interface ExchangeRecord {
  kind: ExchangeKind;
  /** `performance.now()` when the request arrived. */
  startedAt: number;
  traceId: string;
  /** The `traceparent` the client sent, when valid (its span is the parent of ours). */
  traceParent?: TraceParent | null;
  sessionId: string | undefined;
  routeId: string | undefined;
  bindingId: string | undefined;
  /** The matched route's upstream origin (the metrics' bounded label; not logged). */
  upstream: string | undefined;
  method: string;
  /** Normalized destination host (`host[:port]`), when known. */
  host: string | undefined;
  status: number;
  /** Body bytes received from the sandbox (tunnels: all bytes). */
  bytesIn: number;
  /** Body bytes sent to the sandbox (tunnels: all bytes). */
  bytesOut: number;
  /** `forwarded`, `spliced`, `intercepted`, or the error code the request ended with. */
  outcome: string;
  /** With `upstream_tls_error`: Node's error code and message (`upstream-tls.ts`). */
  reason?: string | undefined;
  /** Response header values and body occurrences where the injected credential was masked. */
  scrubbedHeaders?: number;
  scrubbedBody?: number;
}

export type RecordExchange = (record: ExchangeRecord) => void;

const UPSTREAM_FAILURES: ReadonlySet<string> = new Set([
  "upstream_unreachable",
  "upstream_tls_error",
  "upstream_timeout",
  "upstream_reset",
]);

/**
 * The `upstream` label: the matched route's upstream origin; `unmanaged` for traffic sent to a
 * host no route names; `none` for refusals. Bounded by the operator's targets, where a route id
 * label grew with every plan (SPEC §11).
 */
function upstreamLabel(record: ExchangeRecord): string {
  if (record.upstream !== undefined) return record.upstream;
  const sent =
    record.outcome === "forwarded" ||
    record.outcome === "client_aborted" ||
    UPSTREAM_FAILURES.has(record.outcome);
  return sent ? "unmanaged" : "none";
}

/** The access log's fields, in the order they appear on the line. */
const ACCESS_LOG_FIELDS = [
  "kind",
  "sessionId",
  "routeId",
  "bindingId",
  "method",
  "host",
  "status",
  "bytesIn",
  "bytesOut",
  "durationMs",
  "traceId",
  "outcome",
  // Absent (left out of the line) unless an upstream's TLS was refused.
  "reason",
] as const;

export function createRecord(options: { logger: Logger; metrics: GatewayMetrics }): RecordExchange {
  const { logger, metrics } = options;
  // One line per request: written from a template, not through pino's generic serialiser.
  const writeAccessLine = createLineWriter(logger, "info", "request", ACCESS_LOG_FIELDS);
  return function recordExchange(record) {
    const durationMs = performance.now() - record.startedAt;
    const upstream = upstreamLabel(record);
    if (record.kind === "tunnel") {
      metrics.tunnels.inc(
        record.outcome === "spliced" || record.outcome === "intercepted"
          ? record.outcome
          : "refused",
      );
    } else {
      metrics.requests.inc(upstream, String(record.status));
      metrics.duration.observe(durationMs / 1000, upstream);
    }
    if (UPSTREAM_FAILURES.has(record.outcome)) metrics.upstreamErrors.inc(upstream, record.outcome);
    const scrubbedHeaders = record.scrubbedHeaders ?? 0;
    const scrubbedBody = record.scrubbedBody ?? 0;
    if (scrubbedHeaders + scrubbedBody > 0) {
      // An upstream echoed the credential: worth its own line (the count, never the value).
      if (scrubbedHeaders > 0) metrics.scrubbed.add(scrubbedHeaders, "header");
      if (scrubbedBody > 0) metrics.scrubbed.add(scrubbedBody, "body");
      logger.warn("secret_scrubbed", {
        sessionId: record.sessionId,
        routeId: record.routeId,
        bindingId: record.bindingId,
        host: record.host,
        status: record.status,
        count: scrubbedHeaders + scrubbedBody,
        headers: scrubbedHeaders,
        body: scrubbedBody,
        traceId: record.traceId,
      });
    }

    writeAccessLine({
      kind: record.kind,
      sessionId: record.sessionId,
      routeId: record.routeId,
      bindingId: record.bindingId,
      method: record.method,
      host: record.host,
      status: record.status,
      bytesIn: record.bytesIn,
      bytesOut: record.bytesOut,
      durationMs: Math.round(durationMs * 100) / 100,
      traceId: record.traceId,
      outcome: record.outcome,
      reason: record.reason,
    });
  };
}
