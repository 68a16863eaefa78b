/**
 * Reads one HTTP/1.1 response from the bytes a client received, for the harnesses that write
 * their request themselves (`storm-sandboxes.ts`): the status line, the header fields and the
 * whole body, framed as RFC 9112 §6.3 says — the chunked coding, else `Content-Length`, else
 * the connection's end.
 */

export const HEADER_END = Buffer.from("\r\n\r\n");
const CRLF = Buffer.from("\r\n");

/**
 * One HTTP/1.1 response read from the start of `data`: its status and whole body, framed by
 * `Content-Length` or the chunked coding, or `undefined` while it is incomplete. A response
 * framed by neither (its body ends with the connection) is completed by `closed`.
 */
export function readResponse(
  data: Buffer,
  closed = false,
): { status: number; body: Buffer } | undefined {
  const headEnd = data.indexOf(HEADER_END);
  if (headEnd < 0) {
    if (closed) throw new Error("the connection closed before a whole response head");
    return undefined;
  }
  const [statusLine = "", ...fields] = data.toString("latin1", 0, headEnd).split("\r\n");
  const status = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(statusLine)?.[1];
  if (status === undefined) throw new Error(`not an HTTP/1.1 status line: ${statusLine}`);
  let length: number | undefined;
  let chunked = false;
  for (const field of fields) {
    const colon = field.indexOf(":");
    if (colon <= 0) throw new Error(`a malformed response header: ${field}`);
    const name = field.slice(0, colon).trim().toLowerCase();
    const value = field.slice(colon + 1).trim();
    if (name === "content-length") {
      if (!/^\d+$/.test(value)) throw new Error(`a malformed Content-Length: ${value}`);
      length = Number(value);
    } else if (name === "transfer-encoding") {
      if (value.toLowerCase() !== "chunked") throw new Error(`a transfer coding: ${value}`);
      chunked = true;
    }
  }
  const bodyStart = headEnd + HEADER_END.length;
  const complete = (body: Buffer) => ({ status: Number(status), body });
  if (chunked) {
    const parts: Buffer[] = [];
    for (let at = bodyStart; ; ) {
      const lineEnd = data.indexOf(CRLF, at);
      if (lineEnd < 0) break;
      const size = data.toString("latin1", at, lineEnd).split(";", 1)[0]?.trim() ?? "";
      if (!/^[0-9a-fA-F]+$/.test(size)) throw new Error(`a malformed chunk size: ${size}`);
      const bytes = Number.parseInt(size, 16);
      if (bytes === 0) {
        // The last chunk, then trailer fields (if any) up to an empty line.
        if (data.indexOf(HEADER_END, lineEnd) < 0) break;
        return complete(Buffer.concat(parts));
      }
      const chunkStart = lineEnd + CRLF.length;
      if (data.length < chunkStart + bytes + CRLF.length) break;
      parts.push(data.subarray(chunkStart, chunkStart + bytes));
      at = chunkStart + bytes + CRLF.length;
    }
  } else if (length !== undefined) {
    if (data.length >= bodyStart + length) {
      return complete(data.subarray(bodyStart, bodyStart + length));
    }
  } else if (closed) {
    return complete(data.subarray(bodyStart));
  }
  if (closed) throw new Error("the connection closed before the whole response body");
  return undefined;
}
