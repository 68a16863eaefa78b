import type { ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { errorBody, type GatewayError } from "./errors";

/**
 * The one place gateway errors become bytes on the wire, for a parsed request (`ServerResponse`)
 * and for a raw socket (a refused `CONNECT`, a parse error).
 */

const PROXY_AUTHENTICATE = 'Basic realm="keyway"';
const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: "Bad Request",
  403: "Forbidden",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  421: "Misdirected Request",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** Answers with the error's JSON body; `close` also ends the client connection afterwards. */
export function sendError(res: ServerResponse, error: GatewayError, close = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(error);
  const headers = [
    "content-type",
    "application/json",
    "content-length",
    String(Buffer.byteLength(body)),
  ];
  if (error.status === 407) headers.push("proxy-authenticate", PROXY_AUTHENTICATE);
  if (error.retryAfterSeconds !== undefined) {
    headers.push("retry-after", String(error.retryAfterSeconds));
  }
  if (close) {
    headers.push("connection", "close");
    res.shouldKeepAlive = false;
  }
  res.writeHead(error.status, headers);
  res.end(body);
}

/**
 * Writes a complete HTTP/1.1 error response to a raw socket and closes it. `status` overrides the
 * error's own (a parse error may be a 408 or 431 while its body says `bad_request`).
 */
export function writeSocketError(socket: Duplex, error: GatewayError, status = error.status): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const body = errorBody(error);
  let head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}\r\n`;
  head += "content-type: application/json\r\n";
  head += `content-length: ${Buffer.byteLength(body)}\r\n`;
  if (status === 407) head += `proxy-authenticate: ${PROXY_AUTHENTICATE}\r\n`;
  if (error.retryAfterSeconds !== undefined) head += `retry-after: ${error.retryAfterSeconds}\r\n`;
  head += "connection: close\r\n\r\n";
  socket.end(head + body);
}
