/**
 * Incremental decoder for `text/event-stream` (WHATWG HTML §9.2): feed it text chunks in any
 * split, get whole events. Handles LF, CRLF and CR line ends, comments, multi-line `data`, and
 * the `event`/`id`/`retry` fields.
 */
export interface ServerSentEvent {
  /** `message` when the event names no type. */
  event: string;
  data: string;
  id: string | undefined;
}

export interface SseDecoder {
  /** Decodes a chunk and returns the events it completed. */
  push(chunk: string): ServerSentEvent[];
  /** The `retry` field last seen, in milliseconds. */
  readonly retryMs: number | undefined;
}

export function createSseDecoder(): SseDecoder {
  let buffer = "";
  let dataLines: string[] = [];
  let eventType = "";
  let lastId: string | undefined;
  let retryMs: number | undefined;
  // A chunk ending in CR may be the first half of CRLF: the LF that follows is not a new line.
  let skipLeadingLf = false;

  function line(text: string, out: ServerSentEvent[]): void {
    if (text === "") {
      if (dataLines.length > 0) {
        out.push({ event: eventType || "message", data: dataLines.join("\n"), id: lastId });
      }
      dataLines = [];
      eventType = "";
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        dataLines.push(value);
        break;
      case "event":
        eventType = value;
        break;
      case "id":
        if (!value.includes("\0")) lastId = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) retryMs = Number(value);
        break;
    }
  }

  return {
    push(chunk) {
      const out: ServerSentEvent[] = [];
      buffer += chunk;
      let start = 0;
      if (skipLeadingLf && buffer.charCodeAt(0) === 0x0a) start = 1;
      skipLeadingLf = false;
      for (let i = start; i < buffer.length; i++) {
        const c = buffer.charCodeAt(i);
        if (c !== 0x0a && c !== 0x0d) continue;
        line(buffer.slice(start, i), out);
        if (c === 0x0d) {
          if (i + 1 === buffer.length) skipLeadingLf = true;
          else if (buffer.charCodeAt(i + 1) === 0x0a) i++;
        }
        start = i + 1;
      }
      buffer = buffer.slice(start);
      return out;
    },
    get retryMs() {
      return retryMs;
    },
  };
}
