import { describe, expect, it } from "vitest";
import { formatTraceparent, newSpanId, newTraceId, parseTraceparent } from "./tracing";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN = "00f067aa0ba902b7";

describe("parseTraceparent", () => {
  it("reads a version-00 header and writes it back unchanged", () => {
    const header = `00-${TRACE}-${SPAN}-01`;
    const parsed = parseTraceparent(header);
    expect(parsed).toEqual({ traceId: TRACE, spanId: SPAN, flags: 1 });
    expect(formatTraceparent(parsed!)).toBe(header);
  });

  it("reads later versions by their version-00 prefix", () => {
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-00-future`)).toEqual({
      traceId: TRACE,
      spanId: SPAN,
      flags: 0,
    });
  });

  it.each([
    ["absent", undefined],
    ["version ff", `ff-${TRACE}-${SPAN}-01`],
    ["zero trace id", `00-${"0".repeat(32)}-${SPAN}-01`],
    ["zero span id", `00-${TRACE}-${"0".repeat(16)}-01`],
    ["uppercase hex", `00-${TRACE.toUpperCase()}-${SPAN}-01`],
    ["short trace id", `00-${TRACE.slice(1)}-${SPAN}-01`],
    ["trailing data on version 00", `00-${TRACE}-${SPAN}-01-extra`],
    ["several values", [`00-${TRACE}-${SPAN}-01`, `00-${TRACE}-${SPAN}-01`]],
  ])("refuses %s", (_name, header) => {
    expect(parseTraceparent(header)).toBeNull();
  });
});

describe("newTraceId and newSpanId", () => {
  it("are lowercase hex of 16 and 8 random bytes, fresh each time, also across pool refills", () => {
    const traces = Array.from({ length: 600 }, () => newTraceId());
    const spans = Array.from({ length: 600 }, () => newSpanId());
    for (const id of traces) expect(id).toMatch(/^[0-9a-f]{32}$/);
    for (const id of spans) expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(new Set(traces).size).toBe(traces.length);
    expect(new Set(spans).size).toBe(spans.length);
    // Each id is a valid parent in a traceparent header.
    const header = formatTraceparent({
      traceId: traces[0] ?? "",
      spanId: spans[0] ?? "",
      flags: 1,
    });
    expect(parseTraceparent(header)).toEqual({ traceId: traces[0], spanId: spans[0], flags: 1 });
  });
});
