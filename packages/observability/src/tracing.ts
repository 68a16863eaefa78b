import { randomFillSync } from "node:crypto";
import {
  type Attributes,
  type Context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchSpanProcessor,
  SimpleSpanProcessor,
  type SpanExporter,
  TracerProvider,
} from "@opentelemetry/sdk-trace";

export {
  InMemorySpanExporter,
  type ReadableSpan,
  type SpanExporter,
} from "@opentelemetry/sdk-trace";
export { type Context, type Span, SpanKind, SpanStatusCode, type Tracer };

/**
 * W3C trace context (https://www.w3.org/TR/trace-context/) and OpenTelemetry spans.
 *
 * The trace id travels whether or not spans are exported: the gateway takes it from the sandbox's
 * `traceparent` (or makes one), sends `traceparent` with its credential resolutions, and the
 * control plane records it in the resolution's audit entry. Spans are recorded only when the
 * operator turns export on (`[telemetry] traces = "otlp"`); otherwise no span object is made at
 * all (`tracer` is undefined), so the request path pays nothing for tracing.
 *
 * No global OpenTelemetry state is registered: each service holds its tracer in its deps and
 * passes parent contexts explicitly.
 */
export interface TraceParent {
  /** 32 lowercase hex digits, not all zero. */
  traceId: string;
  /** 16 lowercase hex digits, not all zero: the caller's span. */
  spanId: string;
  /** Trace flags (bit 0: sampled). */
  flags: number;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);

/**
 * A `traceparent` header, or null when absent or invalid (version `ff`, zero ids, wrong shape,
 * or trailing data under version 00). Later versions are read by their version-00 prefix.
 */
export function parseTraceparent(
  header: string | readonly string[] | undefined,
): TraceParent | null {
  if (typeof header !== "string") return null;
  const match = TRACEPARENT.exec(header.trim());
  if (match === null) return null;
  const [, version, traceId, spanId, flags, rest] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string | undefined,
  ];
  if (version === "ff" || (version === "00" && rest !== undefined)) return null;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return null;
  return { traceId, spanId, flags: Number.parseInt(flags, 16) };
}

export function formatTraceparent(parent: TraceParent): string {
  return `00-${parent.traceId}-${parent.spanId}-${(parent.flags & 0xff).toString(16).padStart(2, "0")}`;
}

/**
 * Random bytes for trace and span ids, drawn 4 KiB at a time: one `randomFillSync` per 256 trace
 * ids, then one hex conversion per id. The gateway makes an id for every request without a
 * `traceparent`; `randomUUID().replaceAll("-", "")` took ≈ 0.9–1.3 µs per id here, this ≈ 0.2–0.3 µs.
 */
const idPool = Buffer.alloc(4096);
let idPoolOffset = idPool.length;

function randomHex(bytes: number): string {
  if (idPoolOffset + bytes > idPool.length) {
    randomFillSync(idPool);
    idPoolOffset = 0;
  }
  const hex = idPool.toString("hex", idPoolOffset, idPoolOffset + bytes);
  idPoolOffset += bytes;
  return hex;
}

/** A fresh trace id: 16 random bytes, as 32 lowercase hex digits. */
export function newTraceId(): string {
  return randomHex(16);
}

export function newSpanId(): string {
  return randomHex(8);
}

/** An OpenTelemetry context whose parent is the remote span `parent` names. */
export function remoteContext(parent: TraceParent): Context {
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: parent.traceId,
    spanId: parent.spanId,
    traceFlags: parent.flags & 0x01,
    isRemote: true,
  });
}

/** A context whose active span is `span`: the parent for its children. */
export function contextOf(span: Span): Context {
  return trace.setSpan(ROOT_CONTEXT, span);
}

/** The `traceparent` naming `span` as the parent of the next hop. */
export function traceparentOf(span: Span): string {
  const { traceId, spanId, traceFlags } = span.spanContext();
  return formatTraceparent({ traceId, spanId, flags: traceFlags });
}

/**
 * Runs `work` in a span named `name`, a child of `parent`; ends it with `work`, an error status
 * when it throws (the error's name only: messages may quote values). Without a tracer it only
 * runs `work`.
 */
export async function inSpan<T>(
  tracer: Tracer | undefined,
  name: string,
  parent: Context | undefined,
  attributes: Attributes,
  work: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  if (tracer === undefined) return work(undefined);
  const span = tracer.startSpan(name, { attributes }, parent ?? ROOT_CONTEXT);
  try {
    return await work(span);
  } catch (error) {
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: error instanceof Error ? error.name : "error",
    });
    throw error;
  } finally {
    span.end();
  }
}

export interface TracingOptions {
  /** `service.name` of the spans. */
  service: string;
  /** `[telemetry] traces`: `off` (default) or `otlp`. */
  traces: "off" | "otlp";
  /** OTLP/HTTP traces endpoint (`[telemetry] otlp_endpoint`). */
  otlpEndpoint?: string;
  /** Export to this exporter instead, span by span (tests: an in-memory exporter). */
  exporter?: SpanExporter;
}

export interface Tracing {
  /** Undefined when traces are off: callers then make no spans. */
  readonly tracer: Tracer | undefined;
  /** Exports the spans still buffered and stops. */
  shutdown(): Promise<void>;
}

export function createTracing(options: TracingOptions): Tracing {
  if (options.exporter === undefined && options.traces === "off") {
    return { tracer: undefined, shutdown: async () => {} };
  }
  const processor =
    options.exporter !== undefined
      ? new SimpleSpanProcessor({ exporter: options.exporter })
      : new BatchSpanProcessor({
          exporter: new OTLPTraceExporter(
            options.otlpEndpoint === undefined ? {} : { url: options.otlpEndpoint },
          ),
        });
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": options.service }),
    spanProcessors: [processor],
  });
  return {
    tracer: provider.getTracer("keyway"),
    shutdown: () => provider.shutdown(),
  };
}
