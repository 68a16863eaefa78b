import { describe, expect, it } from "vitest";
import { createSseDecoder } from "./sse-decoder";

describe("createSseDecoder", () => {
  it("decodes events split across chunks at any point", () => {
    const text =
      'event: ready\ndata: {"type":"ready"}\n\n: heartbeat\n\ndata: {"a":1}\r\n\r\nid: 7\ndata: x\ndata: y\r\rretry: 1500\n\n';
    for (let split = 0; split <= text.length; split++) {
      const decoder = createSseDecoder();
      const events = [...decoder.push(text.slice(0, split)), ...decoder.push(text.slice(split))];
      expect(events, `split at ${split}`).toEqual([
        { event: "ready", data: '{"type":"ready"}', id: undefined },
        { event: "message", data: '{"a":1}', id: undefined },
        { event: "message", data: "x\ny", id: "7" },
      ]);
      expect(decoder.retryMs).toBe(1500);
    }
  });

  it("ignores comments and events without data", () => {
    const decoder = createSseDecoder();
    expect(decoder.push(": ping\n\nevent: nothing\n\n")).toEqual([]);
  });
});
