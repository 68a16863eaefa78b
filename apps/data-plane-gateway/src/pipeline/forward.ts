import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { Agent, type Dispatcher, Pool } from "undici";
import { GatewayError, type GatewayErrorCode } from "../errors";
import { sendError } from "../responses";

/**
 * Stage 6 — forward: send the prepared request to its upstream and relay the response (SPEC §7).
 * Route requests go to the route's upstream origin — never to a host taken from the request —
 * through one keep-alive undici `Pool` per origin (undici sets `TCP_NODELAY` on every socket).
 * Unmanaged plain-HTTP requests go to the address `authorize` checked, through an `Agent`.
 * Bodies stream both ways with backpressure: the request body is read only as fast as the
 * upstream socket drains, and the upstream is paused whenever the client's socket is full.
 * Redirects are returned, not followed; bodies are relayed as bytes (no decompression).
 */

export interface ForwardSettings {
  connectTimeoutMs: number;
  /** Time to the upstream's response headers. */
  headersTimeoutMs: number;
  /** Longest silence while the response body streams. */
  bodyIdleTimeoutMs: number;
  /** Extra CA certificates (PEM) trusted for `https` upstreams, besides the system's. */
  ca?: readonly string[];
  /** Idle keep-alive connections are closed after this. Default 60 s. */
  keepAliveTimeoutMs?: number;
}

export interface ForwardTarget {
  /** `scheme://host[:port]` to connect to. */
  origin: string;
  path: string;
  /** Flat `[name, value, …]`, including `host`. */
  headers: string[];
}

export type ForwardOutcome = "forwarded" | "client_aborted" | "upstream_reset" | GatewayErrorCode;

export interface ForwardResult {
  status: number;
  outcome: ForwardOutcome;
  bytesIn: number;
  bytesOut: number;
}

export interface Forward {
  /** To a route's upstream origin. */
  forwardToRoute(
    req: IncomingMessage,
    res: ServerResponse,
    target: ForwardTarget,
  ): Promise<ForwardResult>;
  /** To an unmanaged destination (origin built from an already-checked IP address). */
  forwardToAddress(
    req: IncomingMessage,
    res: ServerResponse,
    target: ForwardTarget,
  ): Promise<ForwardResult>;
  close(): Promise<void>;
}

/** Response headers that belong to the upstream connection, not to the relayed message. */
const RESPONSE_HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "proxy-authenticate",
  "proxy-connection",
]);

const CLIENT_CLOSED = new Error("client closed the connection");

/** Flat response headers for `writeHead`, without hop-by-hop ones. */
export function relayedResponseHeaders(headers: IncomingHttpHeaders): string[] {
  const nominated = headers.connection;
  const out: string[] = [];
  for (const name in headers) {
    if (RESPONSE_HOP_BY_HOP.has(name)) continue;
    if (nominated !== undefined && isNominated(nominated, name)) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (typeof value === "string") out.push(name, value);
    else for (const item of value) out.push(name, item);
  }
  return out;
}

function isNominated(connection: string | string[], name: string): boolean {
  const values = typeof connection === "string" ? [connection] : connection;
  return values.some((value) => value.split(",").some((t) => t.trim().toLowerCase() === name));
}

function upstreamFailure(error: Error): GatewayError {
  const code = "code" in error ? error.code : undefined;
  if (code === "UND_ERR_INVALID_ARG") {
    return new GatewayError("bad_request", "the request cannot be forwarded as sent");
  }
  if (
    code === "UND_ERR_CONNECT_TIMEOUT" ||
    code === "UND_ERR_HEADERS_TIMEOUT" ||
    code === "UND_ERR_BODY_TIMEOUT"
  ) {
    return new GatewayError("upstream_timeout", "the upstream did not answer in time", {
      cause: error,
    });
  }
  return new GatewayError("upstream_unreachable", "the upstream could not be reached", {
    cause: error,
  });
}

/**
 * Relays one upstream response into a `ServerResponse` (undici's dispatch handler interface).
 * Pauses the upstream while the client's socket is full and resumes it on `drain`.
 */
class ResponseRelay implements Dispatcher.DispatchHandler {
  status = 0;
  bytesIn = 0;
  bytesOut = 0;
  #controller: Dispatcher.DispatchController | null = null;
  readonly #resume = () => this.#controller?.resume();
  #clientClosed = false;
  readonly #onClientClose = () => {
    if (this.res.writableFinished) return;
    this.#clientClosed = true;
    this.#controller?.abort(CLIENT_CLOSED);
  };

  constructor(
    private readonly res: ServerResponse,
    private readonly settle: (result: ForwardResult) => void,
  ) {
    res.on("drain", this.#resume);
    res.once("close", this.#onClientClose);
  }

  countRequestBody(req: IncomingMessage): void {
    // Paused first: a `data` listener must not start the flow before undici takes the body.
    req.pause();
    req.on("data", (chunk: Buffer) => {
      this.bytesIn += chunk.length;
    });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    // The client may have gone while the request waited for an upstream connection.
    if (this.#clientClosed) controller.abort(CLIENT_CLOSED);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    if (statusCode < 200) return; // 1xx informational: not relayed
    this.status = statusCode;
    const relayed = relayedResponseHeaders(headers);
    if (statusMessage) this.res.writeHead(statusCode, statusMessage, relayed);
    else this.res.writeHead(statusCode, relayed);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bytesOut += chunk.length;
    if (!this.res.write(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    this.res.end();
    this.#finish("forwarded");
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (error === CLIENT_CLOSED) {
      this.#finish("client_aborted");
      return;
    }
    if (this.res.headersSent) {
      // Mid-body: the only honest signal left is a broken connection.
      this.res.destroy();
      this.#finish("upstream_reset");
      return;
    }
    const failure = upstreamFailure(error);
    this.status = failure.status;
    sendError(this.res, failure);
    this.#finish(failure.code);
  }

  #finish(outcome: ForwardOutcome): void {
    this.res.off("drain", this.#resume);
    this.res.off("close", this.#onClientClose);
    this.settle({ status: this.status, outcome, bytesIn: this.bytesIn, bytesOut: this.bytesOut });
  }
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return (length !== undefined && length !== "0") || req.headers["transfer-encoding"] !== undefined;
}

export function createForward(settings: ForwardSettings): Forward {
  const connect = {
    timeout: settings.connectTimeoutMs,
    ...(settings.ca && settings.ca.length > 0 ? { ca: [...settings.ca] } : {}),
  };
  const dispatcherOptions = {
    connect,
    headersTimeout: settings.headersTimeoutMs,
    bodyTimeout: settings.bodyIdleTimeoutMs,
    keepAliveTimeout: settings.keepAliveTimeoutMs ?? 60_000,
  };
  const pools = new Map<string, Pool>();
  const unmanaged = new Agent(dispatcherOptions);

  function poolFor(origin: string): Pool {
    let pool = pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, dispatcherOptions);
      pools.set(origin, pool);
    }
    return pool;
  }

  function dispatch(
    dispatcher: Dispatcher,
    req: IncomingMessage,
    res: ServerResponse,
    target: ForwardTarget,
  ): Promise<ForwardResult> {
    return new Promise((settle) => {
      const relay = new ResponseRelay(res, settle);
      const body = hasBody(req) ? req : null;
      if (body !== null) relay.countRequestBody(body);
      try {
        dispatcher.dispatch(
          {
            origin: target.origin,
            method: req.method ?? "GET",
            path: target.path,
            headers: target.headers,
            body,
            // A request is sent once: retrying is a later stage's decision, not undici's.
            idempotent: false,
          },
          relay,
        );
      } catch (error) {
        // undici refuses some inputs synchronously (e.g. a header value it considers invalid).
        relay.onResponseError(
          { aborted: false, paused: false, reason: null, abort() {}, pause() {}, resume() {} },
          error instanceof Error ? error : new Error(String(error)),
        );
      }
    });
  }

  return {
    forwardToRoute: (req, res, target) => dispatch(poolFor(target.origin), req, res, target),
    forwardToAddress: (req, res, target) => dispatch(unmanaged, req, res, target),
    async close() {
      await Promise.all([...pools.values()].map((pool) => pool.close()));
      await unmanaged.close();
    },
  };
}
