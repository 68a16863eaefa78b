import { describe, expect, it } from "vitest";
import { createSseRewriter, type RewriteEventData, SseEventTooLargeError } from "./sse-rewriter";

/** Upper-cases data that contains "rewrite me"; leaves the rest. */
const upperRewrite: RewriteEventData = (data) =>
  data.includes("rewrite me") ? data.toUpperCase().replaceAll("\n", " ") : null;

function run(chunks: readonly Buffer[], rewrite = upperRewrite, max = 1 << 20): string {
  const rewriter = createSseRewriter(rewrite, max);
  let out = "";
  for (const chunk of chunks) out += rewriter.push(chunk);
  return out + rewriter.end();
}

/** Every way to cut `bytes` into two chunks, and one byte at a time. */
function splits(bytes: Buffer): Buffer[][] {
  const ways: Buffer[][] = [];
  for (let i = 0; i <= bytes.length; i++) ways.push([bytes.subarray(0, i), bytes.subarray(i)]);
  ways.push([...bytes].map((b) => Buffer.from([b])));
  return ways;
}

describe("createSseRewriter", () => {
  const stream = Buffer.from(
    [
      ": keep-alive comment\n\n",
      "event: message\nid: 1\ndata: leave é alone\n\n",
      "event: message\r\nid: 2\r\ndata: rewrite me ✓\r\n\r\n",
      "data:rewrite me\rdata: second line\r\r",
      "retry: 1000\n\n",
      "data\n\n",
    ].join(""),
  );

  it("relays untouched events byte for byte and rewrites the chosen ones", () => {
    expect(run([stream])).toBe(
      [
        ": keep-alive comment\n\n",
        "event: message\nid: 1\ndata: leave é alone\n\n",
        "event: message\nid: 2\ndata: REWRITE ME ✓\n\n",
        "data: REWRITE ME SECOND LINE\n\n",
        "retry: 1000\n\n",
        "data\n\n",
      ].join(""),
    );
  });

  it("gives the same output however the stream is cut into chunks", () => {
    const whole = run([stream]);
    for (const chunks of splits(stream)) expect(run(chunks)).toBe(whole);
  });

  it("holds an event until its blank line arrives", () => {
    const rewriter = createSseRewriter(upperRewrite, 1 << 20);
    expect(rewriter.push(Buffer.from("data: rewrite me\n"))).toBe("");
    // A lone CR may be the first half of a CRLF: the event is not complete yet.
    expect(rewriter.push(Buffer.from("\r"))).toBe("");
    expect(rewriter.push(Buffer.from("\ndata: next"))).toBe("data: REWRITE ME\n\n");
    expect(rewriter.end()).toBe("data: next");
  });

  it("rewrites an unterminated last event at the end of the stream", () => {
    expect(run([Buffer.from("id: 7\ndata: rewrite me")])).toBe("id: 7\ndata: REWRITE ME\n\n");
  });

  it("keeps a leading byte-order mark and still reads the first event's fields", () => {
    expect(run([Buffer.from("\uFEFFdata: rewrite me\n\n")])).toBe("\uFEFFdata: REWRITE ME\n\n");
  });

  it("refuses an event larger than the limit", () => {
    const rewriter = createSseRewriter(upperRewrite, 64);
    expect(() => rewriter.push(Buffer.from(`data: ${"x".repeat(100)}`))).toThrow(
      SseEventTooLargeError,
    );
  });

  it("is not limited by the length of the whole stream", () => {
    const rewriter = createSseRewriter(upperRewrite, 64);
    let out = "";
    for (let i = 0; i < 100; i++) out += rewriter.push(Buffer.from(`data: event ${i}\n\n`));
    expect(out.split("\n\n")).toHaveLength(101);
  });
});
