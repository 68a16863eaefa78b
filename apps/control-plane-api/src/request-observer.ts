import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import {
  contextOf,
  createLineWriter,
  parseTraceparent,
  remoteContext,
  SpanKind,
  SpanStatusCode,
  type Context as TraceContext,
} from "@keyway/observability";
import type { Principal } from "./auth/principal";
import type { AppDeps } from "./deps";

/**
 * What every request leaves behind, whichever handler answers it (hono's middleware in `app.ts`,
 * or a front door in front of hono such as the webhook ingest's): its request id (the caller's,
 * when well-formed), its span under the caller's W3C trace context, its count and latency by route
 * pattern and status, and one access-log line.
 */
export interface ObservedRequest {
  readonly requestId: string;
  /** The trace id (the span's, or the caller's `traceparent`'s when nothing is exported). */
  readonly traceId: string | undefined;
  /** The request's span as a parent for child spans; undefined when traces are off. */
  readonly traceContext: TraceContext | undefined;
  /** Records the answer: `route` is the matched pattern (`/v1/connections/:id`), never a path. */
  end(route: string, status: number, principal?: Principal): void;
}

/** The request headers the observer reads. */
export interface ObservedHeaders {
  requestId: string | undefined;
  traceparent: string | undefined;
}

export type ObserveRequest = (
  method: string,
  path: string,
  headers: ObservedHeaders,
) => ObservedRequest;

/**
 * The observed headers from Node's parsed ones (repeats joined with ", ", as `Headers.get` joins
 * them): reading them through hono's `c.req.header` would build a WHATWG `Headers` of them all.
 */
export function observedHeadersOf(incoming: IncomingMessage): ObservedHeaders {
  const { "x-request-id": requestId, traceparent } = incoming.headers;
  return {
    requestId: typeof requestId === "string" ? requestId : undefined,
    traceparent: typeof traceparent === "string" ? traceparent : undefined,
  };
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** The access log's fields, in the order they are written. */
const ACCESS_LOG_FIELDS = [
  "requestId",
  "method",
  "path",
  "status",
  "durationMs",
  "traceId",
  "principalKind",
  "actor",
] as const;

export function createRequestObserver(
  deps: Pick<AppDeps, "logger" | "metrics" | "tracer">,
): ObserveRequest {
  // One line per request: written from a template, not through pino's generic serialiser
  // (≈ 40 µs per request; `pnpm bench:webhooks --profile`, docs/benchmarks.md).
  const writeAccessLine = createLineWriter(deps.logger, "info", "request", ACCESS_LOG_FIELDS);
  const { metrics, tracer } = deps;

  return function observeRequest(method, path, headers) {
    const incomingId = headers.requestId;
    const requestId =
      incomingId !== undefined && REQUEST_ID.test(incomingId) ? incomingId : randomUUID();
    const started = performance.now();
    // W3C trace context: a gateway's resolution carries the sandbox request's trace.
    const parent = parseTraceparent(headers.traceparent);
    const span = tracer?.startSpan(
      `${method} ${path.startsWith("/internal/") ? "internal" : "request"}`,
      { kind: SpanKind.SERVER, attributes: { "http.request.method": method } },
      parent === null ? undefined : remoteContext(parent),
    );
    const traceId = span?.spanContext().traceId ?? parent?.traceId;
    return {
      requestId,
      traceId,
      traceContext: span === undefined ? undefined : contextOf(span),
      end(route, status, principal) {
        const seconds = (performance.now() - started) / 1000;
        metrics.requests.inc(method, route, String(status));
        metrics.duration.observe(seconds, method, route);
        if (span !== undefined) {
          span.updateName(`${method} ${route}`);
          span.setAttribute("http.route", route);
          span.setAttribute("http.response.status_code", status);
          if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
          span.end();
        }
        writeAccessLine({
          requestId,
          method,
          path,
          status,
          durationMs: Math.round(seconds * 100_000) / 100,
          traceId,
          principalKind: principal?.kind,
          actor: principal?.actor,
        });
      },
    };
  };
}
