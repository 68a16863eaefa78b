import { StringDecoder } from "node:string_decoder";

/**
 * Rewrites a `text/event-stream` body one event at a time (WHATWG HTML "server-sent events"):
 * bytes are cut into events at blank lines, whatever the chunk boundaries (a `\r\n` may be split
 * across two chunks, a UTF-8 character too). An event is held only until its blank line, then
 * given to `rewrite` with its `data` (the `data:` lines joined by `\n`). Events `rewrite` leaves
 * alone — and comments, `event:`, `id:`, `retry:` lines — leave as they arrived; a rewritten event
 * keeps its other fields and gets one `data:` line in place of its data lines.
 */

/** The event's new `data` (a single line), or `null` to relay the event as it arrived. */
export type RewriteEventData = (data: string) => string | null;

export class SseEventTooLargeError extends Error {
  override readonly name = "SseEventTooLargeError";
}

export interface SseRewriter {
  /** The text to relay for this chunk: every event it completed, possibly none (`""`). */
  push(chunk: Buffer): string;
  /** The rest at the end of the stream, an unterminated last event included. */
  end(): string;
}

const LF = 0x0a;
const CR = 0x0d;
const BOM = "\uFEFF";

export function createSseRewriter(rewrite: RewriteEventData, maxEventChars: number): SseRewriter {
  const decoder = new StringDecoder("utf8");
  /** Undelivered text; it starts at the first byte of the current, incomplete event. */
  let text = "";
  /** Where the next unscanned line starts in `text` (earlier lines of the event are not blank). */
  let lineStart = 0;
  let atStreamStart = true;

  /** The text to relay for one complete event (`raw` includes its terminating blank line). */
  function finishEvent(raw: string): string {
    const bom = atStreamStart && raw.startsWith(BOM);
    atStreamStart = false;
    const fieldText = bom ? raw.slice(1) : raw;
    const lines = fieldText.split(/\r\n|\r|\n/);
    let data: string | null = null;
    for (const line of lines) {
      if (!isDataLine(line)) continue;
      const value = fieldValue(line);
      data = data === null ? value : `${data}\n${value}`;
    }
    if (data === null) return raw;
    const replaced = rewrite(data);
    if (replaced === null) return raw;
    let out = bom ? BOM : "";
    let dataWritten = false;
    for (const line of lines) {
      if (line === "") continue;
      if (isDataLine(line)) {
        if (!dataWritten) out += `data: ${replaced}\n`;
        dataWritten = true;
      } else {
        out += `${line}\n`;
      }
    }
    return `${out}\n`;
  }

  function drain(final: boolean): string {
    let out = "";
    let eventStart = 0;
    let pos = lineStart;
    // Cached positions of the next CR and LF, so a stream without CRs is scanned once.
    let nextCr = -2;
    let nextLf = -2;
    while (pos < text.length) {
      if (nextCr !== -1 && nextCr < pos) nextCr = text.indexOf("\r", pos);
      if (nextLf !== -1 && nextLf < pos) nextLf = text.indexOf("\n", pos);
      const end = nextCr === -1 ? nextLf : nextLf === -1 ? nextCr : Math.min(nextCr, nextLf);
      if (end === -1) break;
      let next = end + 1;
      if (text.charCodeAt(end) === CR) {
        // A CR at the end of what arrived may be the first half of a CRLF.
        if (next === text.length && !final) break;
        if (text.charCodeAt(next) === LF) next++;
      }
      if (end === pos) {
        out += finishEvent(text.slice(eventStart, next));
        eventStart = next;
      }
      pos = next;
    }
    text = text.slice(eventStart);
    lineStart = pos - eventStart;
    if (final && text.length > 0) {
      // The stream ended inside an event. Clients drop such an event; rewrite it anyway, so what
      // is relayed never holds an unchecked message whatever the client does.
      out += finishEvent(text);
      text = "";
      lineStart = 0;
    }
    if (text.length > maxEventChars) {
      throw new SseEventTooLargeError(`an event stream event exceeds ${maxEventChars} characters`);
    }
    return out;
  }

  return {
    push(chunk) {
      text += decoder.write(chunk);
      return drain(false);
    },
    end() {
      text += decoder.end();
      return drain(true);
    },
  };
}

function isDataLine(line: string): boolean {
  return line.startsWith("data") && (line.length === 4 || line.charCodeAt(4) === 0x3a);
}

/** A field's value: after the first colon, minus one leading space. */
function fieldValue(line: string): string {
  const colon = line.indexOf(":");
  if (colon === -1) return "";
  return line.charCodeAt(colon + 1) === 0x20 ? line.slice(colon + 2) : line.slice(colon + 1);
}
