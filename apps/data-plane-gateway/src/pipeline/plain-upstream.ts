import type { IncomingHttpHeaders } from "node:http";
import type { Socket } from "node:net";
import type { buildConnector, Dispatcher } from "undici";

/**
 * The upstream leg of a route to a plain-HTTP (`http:`) origin for requests without a body: a
 * small keep-alive HTTP/1.1 client that writes the request head as one string and frames the
 * response itself, behind the same dispatch-handler interface as undici (`ResponseRelay`, the
 * scrubber and retries work unchanged). Everything else — a request body, `HEAD`, headers with
 * a framing or connection meaning, `https:` origins — goes to `fallback` (undici's `Pool`).
 *
 * Why: per keep-alive request undici's `Pool` costs ≈ 18 µs of CPU more than this on Node 20
 * (its `Request` object and header validation, the WebAssembly parser's callbacks, two
 * `setImmediate`s and a socket ref/unref per request); docs/benchmarks.md, "The upstream leg
 * without undici". Measured through a plain forwarder: 57 → 39 µs per request.
 *
 * Safety rules, as strict as undici's (or stricter):
 * - request: method, path, header names and values checked like undici's (no CR, LF or NUL; a
 *   token for names), refused synchronously with `UND_ERR_INVALID_ARG`;
 * - response: CRLF line endings only, status line `HTTP/1.x NNN`, header names tokens, no
 *   obs-fold, no control characters in values, a head of at most `maxHeaderBytes`;
 *   `Content-Length` digits only and at most once; `Transfer-Encoding` exactly `chunked` and never
 *   with a `Content-Length`; anything else is a parse error (502) and the connection is dropped;
 * - 204 and 304 carry no body; a response with neither length nor chunked ends with the
 *   connection (which is then not reused); `Connection: close` or HTTP/1.0 is not reused either;
 * - bytes after a response's end, or arriving on an idle connection, drop that connection;
 * - an idle connection is reused only after one event-loop turn (the check phase), so that bytes
 *   or a FIN already on their way are read first — undici's fix for GHSA-35p6-xmwp-9g52; if
 *   anything arrives in that turn, the request goes to another connection instead;
 * - headers timeout from the request's write to the response head, body timeout between body
 *   bytes (not while the client is paused), idle connections closed after the keep-alive timeout
 *   (or the upstream's `Keep-Alive: timeout` hint less 2 s), all checked by one ticker per origin.
 * Errors carry undici's codes (`UND_ERR_SOCKET`, `UND_ERR_HEADERS_TIMEOUT`, …), so retries,
 * the circuit breaker and the error responses read them the same way.
 */

export interface PlainUpstreamOptions {
  /** undici-style connector (`createUpstreamConnector`): connect timeout, `TCP_NODELAY`. */
  connect: buildConnector.connector;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** Largest response head accepted. Default 16 KiB (Node's and undici's default). */
  maxHeaderBytes?: number;
  /** Requests this client does not take. */
  fallback: Dispatcher;
}

/** What forward.ts dispatches to: undici's `Dispatcher` or this. */
export interface RequestDispatcher {
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
}

class UpstreamError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = "UpstreamError";
  }
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Characters a header value may not contain (undici's rule: CR, LF, NUL and other controls). */
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const INVALID_PATH = /[^\u0021-\u00ff]/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?$/;
const CONNECTION_CLOSE = /(?:^|,)[\t ]*close[\t ]*(?:,|$)/i;
const CHUNK_SIZE = /^([0-9A-Fa-f]{1,13})(?:;[\t\x20-\x7e\x80-\xff]*)?$/;
const DIGITS = /^\d{1,15}$/;
const KEEP_ALIVE_TIMEOUT = /timeout=(\d+)/i;
const CRLF = Buffer.from("\r\n");
const HEAD_END = Buffer.from("\r\n\r\n");

/** Request headers undici gives a meaning to: such requests go to the fallback. */
const SPECIAL_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "upgrade",
  "transfer-encoding",
  "content-length",
  "expect",
  "te",
]);
const EXPECTS_PAYLOAD: ReadonlySet<string> = new Set(["POST", "PUT", "PATCH", "QUERY"]);

enum State {
  /** Connecting, or waiting a loop turn before the request is written. */
  Opening = 0,
  Head = 1,
  Length = 2,
  ChunkSize = 3,
  ChunkData = 4,
  ChunkEnd = 5,
  Trailers = 6,
  UntilClose = 7,
  Idle = 8,
}

/** One request/response: the controller the handler pauses, resumes and aborts. */
class Exchange implements Dispatcher.DispatchController {
  aborted = false;
  paused = false;
  reason: Error | null = null;
  done = false;
  conn: Connection | null = null;

  constructor(
    readonly origin: PlainHttpOrigin,
    readonly handler: Dispatcher.DispatchHandler,
    readonly head: string,
  ) {}

  pause(): void {
    this.paused = true;
    this.conn?.paused(this);
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.conn?.resumed(this);
  }

  abort(reason: Error): void {
    if (this.done) return;
    this.aborted = true;
    this.reason = reason;
    const conn = this.conn;
    this.conn = null;
    conn?.abandon();
    this.fail(reason);
  }

  fail(error: Error): void {
    if (this.done) return;
    this.done = true;
    this.conn = null;
    this.handler.onResponseError?.(this, error);
  }
}

class Connection {
  state = State.Opening;
  exchange: Exchange | null = null;
  socket: Socket | null = null;
  /** Bytes of an incomplete head, chunk-size line or trailer section. */
  pending: Buffer | null = null;
  /** Body bytes read but held while the handler is paused. */
  held: Buffer | null = null;
  remaining = 0;
  reusable = true;
  deadline = Number.POSITIVE_INFINITY;
  deadlineCode = "";
  idleUntil = 0;
  /** Set once the socket is gone. */
  closed = false;
  socketError: Error | null = null;
  /** The socket closed while body bytes were still held for a paused handler. */
  closedWhileHeld = false;
  status = 0;

  constructor(readonly origin: PlainHttpOrigin) {}

  attach(socket: Socket): void {
    this.socket = socket;
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (error: Error) => {
      this.socketError ??= error;
    });
    // The upstream finished its side: nothing more can be asked on this connection.
    socket.on("end", () => socket.destroy());
    socket.on("close", () => this.onClose());
  }

  /** Writes the exchange's request and waits for the head. */
  send(exchange: Exchange): void {
    this.exchange = exchange;
    exchange.conn = this;
    this.state = State.Head;
    this.reusable = true;
    this.pending = null;
    this.origin.armHeadersTimeout(this);
    this.socket?.write(exchange.head, "latin1");
  }

  paused(_exchange: Exchange): void {
    this.deadline = Number.POSITIVE_INFINITY;
    this.socket?.pause();
  }

  resumed(exchange: Exchange): void {
    if (this.exchange !== exchange) return;
    this.origin.armBodyTimeout(this);
    // Held bytes first, before the socket flows again (in order).
    const held = this.held;
    if (held !== null) {
      this.held = null;
      this.onData(held);
      if (this.exchange === exchange && exchange.paused) return;
      if (this.closedWhileHeld) {
        // Everything the upstream sent has been handed over: now its close counts.
        this.closedWhileHeld = false;
        this.settleClose();
        return;
      }
      if (this.exchange !== exchange) return;
    }
    this.socket?.resume();
  }

  /** The exchange gave up (its client left): the connection is not reused. */
  abandon(): void {
    this.exchange = null;
    this.reusable = false;
    this.destroy();
  }

  destroy(): void {
    this.closed = true;
    this.deadline = Number.POSITIVE_INFINITY;
    this.origin.forget(this);
    this.socket?.destroy();
  }

  onClose(): void {
    const wasClosed = this.closed;
    this.closed = true;
    this.origin.forget(this);
    if (this.held !== null && this.socketError === null && !wasClosed) {
      // The body's last bytes wait for the paused handler: the end is told after them. (Node
      // emits `end`, and so `close`, only once a paused socket's data was read, so this is a
      // guard for an error-free close arriving some other way.)
      this.closedWhileHeld = true;
      return;
    }
    this.settleClose(wasClosed);
  }

  /** The socket is gone: what that means for the exchange it carried. */
  settleClose(wasClosed = false): void {
    const exchange = this.exchange;
    this.exchange = null;
    if (exchange === null || exchange.done) return;
    if (this.state === State.Opening) {
      // Not written yet (waiting its turn on an idle connection): another connection takes it.
      if (!wasClosed) this.origin.start(exchange);
      return;
    }
    if (this.state === State.UntilClose && this.socketError === null) {
      this.complete(exchange, {});
      return;
    }
    exchange.fail(this.socketError ?? new UpstreamError("other side closed", "UND_ERR_SOCKET"));
  }

  onData(chunk: Buffer): void {
    const exchange = this.exchange;
    if (exchange === null || this.state === State.Opening || this.state === State.Idle) {
      // Nothing asked for these bytes: the connection cannot be trusted any more.
      const waiting = this.state === State.Opening ? exchange : null;
      this.exchange = null;
      this.destroy();
      if (waiting !== null && !waiting.done) this.origin.start(waiting);
      return;
    }
    if (exchange.paused) {
      this.held = this.held === null ? chunk : Buffer.concat([this.held, chunk]);
      return;
    }
    try {
      this.parse(exchange, chunk);
    } catch (error) {
      this.reusable = false;
      this.exchange = null;
      this.destroy();
      exchange.fail(error instanceof Error ? error : new Error(String(error)));
    }
  }

  parse(exchange: Exchange, input: Buffer): void {
    let data = input;
    while (true) {
      if (this.exchange !== exchange || exchange.done) {
        // Completed or aborted: whatever else came is unsolicited.
        if (data.length > 0 && !this.closed) this.destroy();
        return;
      }
      if (exchange.paused) {
        if (data.length > 0) this.held = data;
        return;
      }
      switch (this.state) {
        case State.Head: {
          const buffered = this.pending === null ? data : Buffer.concat([this.pending, data]);
          const end = buffered.indexOf(HEAD_END);
          if (end < 0) {
            if (buffered.length > this.origin.maxHeaderBytes) {
              throw new UpstreamError("response headers too large", "UND_ERR_HEADERS_OVERFLOW");
            }
            this.pending = buffered;
            return;
          }
          if (end > this.origin.maxHeaderBytes) {
            throw new UpstreamError("response headers too large", "UND_ERR_HEADERS_OVERFLOW");
          }
          this.pending = null;
          data = buffered.subarray(end + 4);
          this.head(exchange, buffered.toString("latin1", 0, end));
          break;
        }
        case State.Length: {
          if (data.length === 0) return;
          data = this.body(exchange, data);
          if (this.remaining === 0) {
            this.end(exchange, data);
            return;
          }
          break;
        }
        case State.UntilClose: {
          if (data.length === 0) return;
          this.origin.armBodyTimeout(this);
          const chunk = data;
          data = data.subarray(data.length);
          exchange.handler.onResponseData?.(exchange, chunk);
          break;
        }
        case State.ChunkSize:
        case State.Trailers: {
          const buffered = this.pending === null ? data : Buffer.concat([this.pending, data]);
          const end = buffered.indexOf(CRLF);
          if (end < 0) {
            if (buffered.length > this.origin.maxHeaderBytes) {
              throw new UpstreamError("chunk framing too long", "HPE_INVALID_CHUNK_SIZE");
            }
            this.pending = buffered;
            return;
          }
          this.pending = null;
          const line = buffered.toString("latin1", 0, end);
          data = buffered.subarray(end + 2);
          if (this.state === State.Trailers) {
            if (line === "") {
              this.end(exchange, data);
              return;
            }
            headerValue(line, headerColon(line));
            break;
          }
          const size = CHUNK_SIZE.exec(line);
          if (size === null)
            throw new UpstreamError("invalid chunk size", "HPE_INVALID_CHUNK_SIZE");
          this.remaining = Number.parseInt(size[1] as string, 16);
          this.state = this.remaining === 0 ? State.Trailers : State.ChunkData;
          break;
        }
        case State.ChunkData: {
          if (data.length === 0) return;
          // Set before the handler sees the bytes: it may pause, and the rest waits in that state.
          if (data.length >= this.remaining) this.state = State.ChunkEnd;
          data = this.body(exchange, data);
          break;
        }
        case State.ChunkEnd: {
          const buffered = this.pending === null ? data : Buffer.concat([this.pending, data]);
          if (buffered.length < 2) {
            this.pending = buffered;
            return;
          }
          this.pending = null;
          if (buffered[0] !== 13 || buffered[1] !== 10) {
            throw new UpstreamError("missing CRLF after chunk", "HPE_STRICT");
          }
          data = buffered.subarray(2);
          this.state = State.ChunkSize;
          break;
        }
        default:
          return;
      }
    }
  }

  /** Hands the body bytes at the start of `data` (up to `remaining`) to the handler; the rest. */
  body(exchange: Exchange, data: Buffer): Buffer {
    const take = data.length <= this.remaining ? data : data.subarray(0, this.remaining);
    this.remaining -= take.length;
    const rest = data.subarray(take.length);
    this.origin.armBodyTimeout(this);
    exchange.handler.onResponseData?.(exchange, take);
    return rest;
  }

  /** The response is complete with `rest` still unread: bytes beyond it drop the connection. */
  end(exchange: Exchange, rest: Buffer): void {
    if (rest.length > 0) this.reusable = false;
    this.complete(exchange, {});
    if (rest.length > 0 && !this.closed) this.destroy();
  }

  /** A response head: informational ones are skipped, a final one is handed to the handler. */
  head(exchange: Exchange, text: string): void {
    let lineEnd = text.indexOf("\r\n");
    const status = STATUS_LINE.exec(lineEnd < 0 ? text : text.slice(0, lineEnd));
    if (status === null) throw new UpstreamError("invalid status line", "HPE_INVALID_CONSTANT");
    const statusCode = Number(status[2]);
    // A plain object (as undici's): V8 keeps it fast for the relay's `for…in`, where a
    // null-prototype one is a dictionary (≈ 10× slower to walk). Names `Object.prototype` has are
    // handled below.
    const headers: IncomingHttpHeaders = {};
    let contentLength = -1;
    let chunked = false;
    while (lineEnd >= 0) {
      // One header line, read in place (no split): [start, end) of `text`.
      const start = lineEnd + 2;
      lineEnd = text.indexOf("\r\n", start);
      const end = lineEnd < 0 ? text.length : lineEnd;
      let colon = start;
      let upper = false;
      for (; colon < end; colon++) {
        const code = text.charCodeAt(colon);
        if (code === 58) break; // ":"
        const kind = code > 127 ? 0 : TOKEN_CHARS[code];
        if (kind === 0) throw new UpstreamError("invalid header", "HPE_INVALID_HEADER_TOKEN");
        if (kind === 2) upper = true;
      }
      if (colon === start || colon === end) {
        throw new UpstreamError("invalid header", "HPE_INVALID_HEADER_TOKEN");
      }
      const rawName = text.slice(start, colon);
      const name = upper ? rawName.toLowerCase() : rawName;
      const value = trimmedValue(text, colon + 1, end);
      if (name === "content-length") {
        if (contentLength >= 0 || !DIGITS.test(value)) {
          throw new UpstreamError("invalid content-length", "HPE_UNEXPECTED_CONTENT_LENGTH");
        }
        contentLength = Number(value);
      } else if (name === "transfer-encoding") {
        if (chunked || value.toLowerCase() !== "chunked") {
          throw new UpstreamError("unsupported transfer-encoding", "HPE_INVALID_TRANSFER_ENCODING");
        }
        chunked = true;
      } else if (name === "connection") {
        if (CONNECTION_CLOSE.test(value)) this.reusable = false;
      } else if (name === "keep-alive") {
        const hint = KEEP_ALIVE_TIMEOUT.exec(value);
        if (hint !== null) this.origin.keepAliveHint(this, Number(hint[1]) * 1000);
      }
      if (name === "__proto__") {
        throw new UpstreamError("invalid header", "HPE_INVALID_HEADER_TOKEN");
      }
      const existing = Object.hasOwn(headers, name) ? headers[name] : undefined;
      if (existing === undefined) headers[name] = value;
      else if (typeof existing === "string") headers[name] = [existing, value];
      else existing.push(value);
    }
    if (chunked && contentLength >= 0) {
      throw new UpstreamError(
        "content-length with transfer-encoding",
        "HPE_UNEXPECTED_CONTENT_LENGTH",
      );
    }
    if (statusCode < 200) {
      if (statusCode === 101) throw new UpstreamError("unexpected upgrade", "HPE_INVALID_CONSTANT");
      this.state = State.Head; // informational: the final response follows
      return;
    }
    if (status[1] === "0") this.reusable = false;
    this.status = statusCode;
    if (statusCode === 204 || statusCode === 304) this.state = State.Length;
    else if (chunked) this.state = State.ChunkSize;
    else if (contentLength >= 0) this.state = State.Length;
    else {
      this.state = State.UntilClose;
      this.reusable = false;
    }
    this.remaining =
      this.state === State.Length && statusCode !== 204 && statusCode !== 304 ? contentLength : 0;
    this.origin.armBodyTimeout(this);
    exchange.handler.onResponseStart?.(exchange, statusCode, headers, status[3] ?? "");
    if (this.state === State.Length && this.remaining === 0 && this.exchange === exchange) {
      this.complete(exchange, {});
    }
  }

  complete(exchange: Exchange, trailers: IncomingHttpHeaders): void {
    this.exchange = null;
    exchange.conn = null;
    this.deadline = Number.POSITIVE_INFINITY;
    this.state = State.Idle;
    if (!exchange.done) {
      exchange.done = true;
      exchange.handler.onResponseEnd?.(exchange, trailers);
    }
    if (this.closed) return;
    if (this.socket?.isPaused()) this.socket.resume();
    if (this.reusable) this.origin.release(this);
    else this.destroy();
  }
}

/** Requests to one plain-HTTP origin over its own keep-alive connections. */
export class PlainHttpOrigin implements RequestDispatcher {
  readonly maxHeaderBytes: number;
  readonly #hostname: string;
  readonly #port: number;
  readonly #host: string;
  readonly #options: PlainUpstreamOptions;
  readonly #fallback: Dispatcher;
  /** Idle connections, most recently used last. */
  readonly #idle: Connection[] = [];
  /** Connections reused this turn, written in the check phase. */
  #toWrite: Connection[] = [];
  #writeScheduled = false;
  readonly #connections = new Set<Connection>();
  #ticker: NodeJS.Timeout | null = null;
  readonly #tickMs: number;
  #closed = false;

  constructor(origin: string, options: PlainUpstreamOptions) {
    const url = new URL(origin);
    if (url.protocol !== "http:") throw new Error(`not a plain-HTTP origin: ${origin}`);
    this.#hostname = url.hostname;
    this.#port = url.port === "" ? 80 : Number(url.port);
    this.#host = url.host;
    this.#options = options;
    this.#fallback = options.fallback;
    this.maxHeaderBytes = options.maxHeaderBytes ?? 16 * 1024;
    const shortest = Math.min(
      options.headersTimeoutMs || 60_000,
      options.bodyTimeoutMs || 60_000,
      options.keepAliveTimeoutMs || 60_000,
    );
    this.#tickMs = Math.max(5, Math.min(1000, Math.floor(shortest / 8)));
  }

  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const method = options.method;
    const headers = options.headers;
    if (
      this.#closed ||
      (options.body !== null && options.body !== undefined) ||
      method === "HEAD" ||
      method === "CONNECT" ||
      options.upgrade ||
      !Array.isArray(headers)
    ) {
      return this.#fallback.dispatch(options, handler);
    }
    if (!TOKEN.test(method)) throw invalidArgument("invalid request method");
    const path = options.path;
    if (path[0] !== "/" || INVALID_PATH.test(path)) throw invalidArgument("invalid request path");
    let host: string | null = null;
    let lines = "";
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i] as string;
      const value = headers[i + 1] as string;
      if (typeof name !== "string" || typeof value !== "string") {
        return this.#fallback.dispatch(options, handler);
      }
      const lower = name.toLowerCase();
      if (SPECIAL_REQUEST_HEADERS.has(lower)) return this.#fallback.dispatch(options, handler);
      if (!TOKEN.test(name)) throw invalidArgument("invalid header name");
      if (INVALID_VALUE.test(value)) throw invalidArgument(`invalid ${name} header`);
      if (lower === "host") {
        if (host !== null) throw invalidArgument("duplicate host header");
        host = value;
        continue;
      }
      lines += `${name}: ${value}\r\n`;
    }
    const payload = EXPECTS_PAYLOAD.has(method) ? "content-length: 0\r\n" : "";
    const head = `${method} ${path} HTTP/1.1\r\nhost: ${host ?? this.#host}\r\nconnection: keep-alive\r\n${lines}${payload}\r\n`;
    const exchange = new Exchange(this, handler, head);
    handler.onRequestStart?.(exchange, {});
    if (!exchange.done) this.start(exchange);
    return true;
  }

  /** Gives an exchange a connection: an idle one after a loop turn, or a new one. */
  start(exchange: Exchange): void {
    if (exchange.done) return;
    const idle = this.#idle.pop();
    if (idle !== undefined) {
      idle.state = State.Opening;
      idle.exchange = exchange;
      exchange.conn = idle;
      this.#toWrite.push(idle);
      if (!this.#writeScheduled) {
        this.#writeScheduled = true;
        setImmediate(this.#writeReused);
      }
      return;
    }
    this.#open(exchange);
  }

  readonly #writeReused = (): void => {
    this.#writeScheduled = false;
    const list = this.#toWrite;
    this.#toWrite = [];
    for (const conn of list) {
      const exchange = conn.exchange;
      if (conn.closed) continue; // its close handler moved the exchange on
      if (exchange === null || exchange.done) {
        this.release(conn);
        continue;
      }
      conn.send(exchange);
    }
  };

  #open(exchange: Exchange): void {
    const conn = new Connection(this);
    conn.exchange = exchange;
    exchange.conn = conn;
    this.#connections.add(conn);
    this.#startTicker();
    this.#options.connect(
      {
        hostname: this.#hostname,
        host: this.#host,
        protocol: "http:",
        port: String(this.#port),
      } as buildConnector.Options,
      (error, socket) => {
        if (error !== null || socket === null) {
          this.forget(conn);
          conn.closed = true;
          const waiting = conn.exchange;
          conn.exchange = null;
          if (waiting !== null) {
            waiting.conn = null;
            waiting.fail(error ?? new UpstreamError("connect failed", "UND_ERR_SOCKET"));
          }
          return;
        }
        conn.attach(socket as Socket);
        if (this.#closed) {
          conn.destroy();
          return;
        }
        const waiting = conn.exchange;
        if (waiting === null || waiting.done) {
          conn.exchange = null;
          this.release(conn);
          return;
        }
        conn.send(waiting);
      },
    );
  }

  release(conn: Connection): void {
    conn.state = State.Idle;
    conn.exchange = null;
    conn.deadline = Number.POSITIVE_INFINITY;
    if (this.#closed || conn.closed) {
      conn.destroy();
      return;
    }
    if (conn.idleUntil === 0 || conn.idleUntil > Date.now() + this.#options.keepAliveTimeoutMs) {
      conn.idleUntil = Date.now() + this.#options.keepAliveTimeoutMs;
    }
    this.#idle.push(conn);
  }

  forget(conn: Connection): void {
    this.#connections.delete(conn);
    const at = this.#idle.indexOf(conn);
    if (at >= 0) this.#idle.splice(at, 1);
    if (this.#connections.size === 0 && this.#ticker !== null) {
      clearInterval(this.#ticker);
      this.#ticker = null;
    }
  }

  armHeadersTimeout(conn: Connection): void {
    const ms = this.#options.headersTimeoutMs;
    conn.deadline = ms > 0 ? Date.now() + ms : Number.POSITIVE_INFINITY;
    conn.deadlineCode = "UND_ERR_HEADERS_TIMEOUT";
    conn.idleUntil = 0;
  }

  armBodyTimeout(conn: Connection): void {
    const ms = this.#options.bodyTimeoutMs;
    conn.deadline = ms > 0 ? Date.now() + ms : Number.POSITIVE_INFINITY;
    conn.deadlineCode = "UND_ERR_BODY_TIMEOUT";
  }

  /** The upstream's `Keep-Alive: timeout=N`: idle no longer than N less 2 s (as undici). */
  keepAliveHint(conn: Connection, ms: number): void {
    const until = Date.now() + Math.min(ms - 2000, this.#options.keepAliveTimeoutMs);
    if (ms - 2000 <= 0) conn.reusable = false;
    else conn.idleUntil = until;
  }

  #startTicker(): void {
    if (this.#ticker !== null) return;
    this.#ticker = setInterval(this.#tick, this.#tickMs);
    this.#ticker.unref();
  }

  readonly #tick = (): void => {
    const now = Date.now();
    for (const conn of this.#connections) {
      if (conn.state === State.Idle) {
        if (conn.idleUntil > 0 && now >= conn.idleUntil) conn.destroy();
        continue;
      }
      if (now < conn.deadline) continue;
      const exchange = conn.exchange;
      const code = conn.deadlineCode;
      conn.exchange = null;
      conn.destroy();
      if (exchange !== null) {
        exchange.conn = null;
        exchange.fail(
          new UpstreamError(
            code === "UND_ERR_HEADERS_TIMEOUT" ? "Headers Timeout Error" : "Body Timeout Error",
            code,
          ),
        );
      }
    }
  };

  /** Closes idle connections now and the others once their exchange ends. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const conn of [...this.#idle]) conn.destroy();
    while (this.#connections.size > 0) await new Promise((r) => setTimeout(r, 10));
  }
}

/** Where a header line's name ends: a token, then the colon (no space before it). */
function headerColon(line: string): number {
  const colon = line.indexOf(":");
  if (colon <= 0) throw new UpstreamError("invalid header", "HPE_INVALID_HEADER_TOKEN");
  for (let i = 0; i < colon; i++) {
    const code = line.charCodeAt(i);
    if (code > 127 || TOKEN_CHARS[code] === 0) {
      throw new UpstreamError("invalid header", "HPE_INVALID_HEADER_TOKEN");
    }
  }
  return colon;
}

/** The characters of an HTTP token (RFC 9110 `tchar`): 2 for upper-case letters, else 1. */
const TOKEN_CHARS = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") {
  TOKEN_CHARS[c.charCodeAt(0)] = 1;
}
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN_CHARS[c.charCodeAt(0)] = 2;

/** A header line's value without the optional white space around it; no control characters. */
function headerValue(line: string, colon: number): string {
  return trimmedValue(line, colon + 1, line.length);
}

/** `text` from `from` to `to`, without the optional white space around it; no control characters. */
function trimmedValue(text: string, from: number, to: number): string {
  let start = from;
  let end = to;
  while (start < end && isOws(text.charCodeAt(start))) start++;
  while (end > start && isOws(text.charCodeAt(end - 1))) end--;
  const value = text.slice(start, end);
  if (INVALID_VALUE.test(value)) {
    throw new UpstreamError("invalid header value", "HPE_INVALID_HEADER_TOKEN");
  }
  return value;
}

function isOws(code: number): boolean {
  return code === 32 || code === 9;
}

function invalidArgument(message: string): Error {
  return new UpstreamError(message, "UND_ERR_INVALID_ARG");
}
