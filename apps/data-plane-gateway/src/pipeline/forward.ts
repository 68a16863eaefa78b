import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { Agent, type Dispatcher, Pool } from "undici";
import { GatewayError, type GatewayErrorCode } from "../errors";
import { HandlerDecorator } from "../handler-decorator";
import { isRetryableConnectionError, retriesAllowed } from "../resilience/retry-policy";
import { sendError } from "../responses";
import { ResponseScrubber } from "../scrub/response-scrubber";
import type { ScrubTally, SecretScrubber } from "../scrub/secret-scrubber";
import { createUpstreamConnector } from "../upstream-connector";
import { upstreamSecureContext, upstreamTlsError, upstreamTlsFailureReason } from "../upstream-tls";
import { PlainHttpOrigin, type RequestDispatcher } from "./plain-upstream";

/**
 * Stage 6 — forward: send the prepared request to its upstream and relay the response (SPEC §7).
 * Route requests go to the route's upstream origin — never to a host taken from the request —
 * through one keep-alive undici `Pool` per origin (undici sets `TCP_NODELAY` on every socket).
 * Unmanaged plain-HTTP requests go to the address `authorize` checked, through an `Agent`.
 * Bodies stream both ways with backpressure: the request body is read only as fast as the
 * upstream socket drains, and the upstream is paused whenever the client's socket is full.
 * Redirects are returned, not followed; bodies are relayed as bytes (no decompression), except
 * on routes where a credential was injected: there the response passes through the scrubber
 * (`scrub/response-scrubber.ts`), which masks the credential and decodes compressed bodies.
 */

export interface ForwardSettings {
  connectTimeoutMs: number;
  /** Time to the upstream's response headers. */
  headersTimeoutMs: number;
  /** Longest silence while the response body streams. */
  bodyIdleTimeoutMs: number;
  /** Extra CA certificates (PEM) for `https` upstreams, added to the system roots. */
  ca?: readonly string[];
  /** Idle keep-alive connections are closed after this. Default 60 s. */
  keepAliveTimeoutMs?: number;
  /**
   * Re-sends of an idempotent request without a body after a connection error before any
   * response byte (`resilience/retry-policy.ts`). Default 1.
   */
  maxRetries?: number;
  /**
   * Requests without a body to `http:` route origins go through `plain-upstream.ts` (a lean
   * keep-alive HTTP/1.1 client) instead of undici's `Pool`, which still takes everything else.
   * Default true; false sends everything through undici.
   */
  plainHttpClient?: boolean;
}

/** Told how each route request fared at the upstream (the circuit breaker listens). */
export interface UpstreamObserver {
  /** Response headers arrived with this status. */
  upstreamResponded(status: number): void;
  /** No answer: connection error or timeout before the response headers. */
  upstreamFailed(): void;
}

export interface ForwardTarget {
  /** `scheme://host[:port]` to connect to. */
  origin: string;
  path: string;
  /** Flat `[name, value, …]`, including `host`. */
  headers: string[];
  /** A body already read and checked (MCP routes), sent instead of the request stream. */
  body?: Buffer;
  /** Decorates the relay, e.g. to rewrite MCP `tools/list` results (`mcp/mcp-response-filter.ts`). */
  wrapHandler?(relay: Dispatcher.DispatchHandler): Dispatcher.DispatchHandler;
  /** The injected credential's forms, masked in the response (routes with a credential only). */
  scrubber?: SecretScrubber | null;
}

export type ForwardOutcome = "forwarded" | "client_aborted" | "upstream_reset" | GatewayErrorCode;

export interface ForwardResult {
  status: number;
  outcome: ForwardOutcome;
  bytesIn: number;
  bytesOut: number;
  /** Why the upstream failed, for the gateway log only (a TLS failure's code and message). */
  reason?: string | undefined;
  /** Response header values and body occurrences where the credential was masked. */
  scrubbedHeaders: number;
  scrubbedBody: number;
}

export interface Forward {
  /** To a route's upstream origin. */
  forwardToRoute(
    req: IncomingMessage,
    res: ServerResponse,
    target: ForwardTarget,
    observer?: UpstreamObserver | null,
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
  const nominated = nominatedNames(headers.connection);
  const out: string[] = [];
  for (const name in headers) {
    if (RESPONSE_HOP_BY_HOP.has(name)) continue;
    if (nominated?.includes(name)) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (typeof value === "string") out.push(name, value);
    else for (const item of value) out.push(name, item);
  }
  return out;
}

/**
 * Header names a `Connection` value lists (lower-case) beyond the hop-by-hop ones dropped anyway,
 * or null: read once per response, since nearly every one says just `keep-alive`.
 */
function nominatedNames(connection: string | string[] | undefined): string[] | null {
  // The usual values name no header: answered without splitting the value.
  if (connection === undefined || connection === "keep-alive" || connection === "close") {
    return null;
  }
  let names: string[] | null = null;
  for (const value of typeof connection === "string" ? [connection] : connection) {
    for (const token of value.split(",")) {
      const name = token.trim().toLowerCase();
      if (name === "" || RESPONSE_HOP_BY_HOP.has(name)) continue;
      names ??= [];
      names.push(name);
    }
  }
  return names;
}

function upstreamFailure(error: Error): GatewayError {
  // Already decided by a decorator (e.g. a response encoding the scrubber cannot read).
  if (error instanceof GatewayError) return error;
  const code = "code" in error ? error.code : undefined;
  if (code === "UND_ERR_INVALID_ARG") {
    return new GatewayError("bad_request", "the request cannot be forwarded as sent");
  }
  if (upstreamTlsFailureReason(error) !== null) return upstreamTlsError(error);
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
class ResponseRelay implements Dispatcher.DispatchHandler, ScrubTally {
  status = 0;
  bytesIn = 0;
  bytesOut = 0;
  scrubbedHeaders = 0;
  scrubbedBody = 0;
  #controller: Dispatcher.DispatchController | null = null;
  // Both listeners are assigned in the constructor: as field initializers, tsx (esbuild
  // `keepNames`) would name each with an `Object.defineProperty` call, for every request.
  readonly #resume: () => void;
  /** Whether `#resume` listens for `drain`: only once the client's socket has been full. */
  #awaitingDrain = false;
  #clientClosed = false;
  readonly #onClientClose: () => void;

  /** Whether the upstream's response headers arrived (a decorator may relay them later, or not). */
  #upstreamAnswered = false;
  /** Set when a failed attempt may be sent again (see `retryWith`). */
  #retriesLeft = 0;
  #retryDispatcher: RequestDispatcher | null = null;
  #retryOptions: Dispatcher.DispatchOptions | null = null;
  /** What is dispatched: this relay, or a decorator around it (`ForwardTarget.wrapHandler`). */
  #retryHandler: Dispatcher.DispatchHandler = this;

  constructor(
    private readonly res: ServerResponse,
    private readonly settle: (result: ForwardResult) => void,
    private readonly observer: UpstreamObserver | null,
  ) {
    this.#resume = () => this.#controller?.resume();
    this.#onClientClose = () => {
      if (this.res.writableFinished) return;
      this.#clientClosed = true;
      this.#controller?.abort(CLIENT_CLOSED);
    };
    // `on`, not `once` (which wraps the listener per call): `#finish` removes it in every case.
    res.on("close", this.#onClientClose);
  }

  /** Allows `retries` re-sends of `options` after connection errors before any response. */
  retryWith(
    dispatcher: RequestDispatcher,
    options: Dispatcher.DispatchOptions,
    retries: number,
    handler: Dispatcher.DispatchHandler = this,
  ): void {
    this.#retryHandler = handler;
    this.#retryDispatcher = dispatcher;
    this.#retryOptions = options;
    this.#retriesLeft = retries;
  }

  #sendAgain(): void {
    if (this.#retryDispatcher === null || this.#retryOptions === null) return;
    try {
      this.#retryDispatcher.dispatch(this.#retryOptions, this.#retryHandler);
    } catch (error) {
      this.onResponseError(
        NO_CONTROLLER,
        error instanceof Error ? error : new Error(String(error)),
      );
    }
  }

  countRequestBody(req: IncomingMessage): void {
    // Paused first: a `data` listener must not start the flow before undici takes the body.
    req.pause();
    req.on("data", (chunk: Buffer) => {
      this.bytesIn += chunk.length;
    });
  }

  /** The upstream answered: a verdict for the observer, and no retry from now on. */
  upstreamStarted(statusCode: number): void {
    if (statusCode < 200 || this.#upstreamAnswered) return;
    this.#upstreamAnswered = true;
    this.observer?.upstreamResponded(statusCode);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    // The client may have gone while the request waited for an upstream connection.
    if (this.#clientClosed) controller.abort(CLIENT_CLOSED);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    if (statusCode < 200) return; // 1xx informational: not relayed
    // A decorator may hand over its own controller with the response (the scrubber's decoded
    // body): pausing and resuming must reach that one.
    this.#controller = controller;
    this.status = statusCode;
    this.upstreamStarted(statusCode);
    const relayed = relayedResponseHeaders(headers);
    if (statusMessage) this.res.writeHead(statusCode, statusMessage, relayed);
    else this.res.writeHead(statusCode, relayed);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bytesOut += chunk.length;
    if (this.res.write(chunk)) return;
    controller.pause();
    if (!this.#awaitingDrain) {
      // `drain` comes after this write returned false, never before: listening now is in time.
      this.#awaitingDrain = true;
      this.res.on("drain", this.#resume);
    }
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
    if (
      this.#retriesLeft > 0 &&
      !this.#upstreamAnswered &&
      this.status === 0 &&
      !this.res.headersSent &&
      isRetryableConnectionError(error)
    ) {
      this.#retriesLeft--;
      // Outside undici's error path: the failed connection is fully torn down first.
      queueMicrotask(() => this.#sendAgain());
      return;
    }
    // A TLS failure is a verdict on configuration, not on the upstream's health: not counted.
    const tlsReason = upstreamTlsFailureReason(error);
    if (
      !this.#upstreamAnswered &&
      !this.res.headersSent &&
      !isRequestRefused(error) &&
      tlsReason === null
    ) {
      this.observer?.upstreamFailed();
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
    this.#finish(failure.code, tlsReason ?? undefined);
  }

  #finish(outcome: ForwardOutcome, reason?: string): void {
    if (this.#awaitingDrain) this.res.off("drain", this.#resume);
    this.res.off("close", this.#onClientClose);
    // undici is done with this exchange: drop what points back into it. A finished relay that
    // sits in the old generation (promoted or pretenured by V8 under load) would otherwise keep
    // undici's controller, and through it the raw response headers, alive through every young
    // collection until the next full GC: ~1 MB promoted per scavenge at 20k req/s
    // (`--trace-gc-nvp`), old space swelling to ~90 MB between full GCs.
    this.#controller = null;
    this.#retryDispatcher = null;
    this.#retryOptions = null;
    this.#retryHandler = this;
    this.settle({
      status: this.status,
      outcome,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      reason,
      scrubbedHeaders: this.scrubbedHeaders,
      scrubbedBody: this.scrubbedBody,
    });
  }
}

/**
 * Outermost around a decorated relay (`ForwardTarget.wrapHandler`, the scrubber): tells the
 * relay when the upstream itself answered, which a decorator that buffers or replaces the
 * response would hide (retries and circuit-breaker verdicts depend on it).
 */
class UpstreamWatch extends HandlerDecorator {
  constructor(
    inner: Dispatcher.DispatchHandler,
    private readonly relay: ResponseRelay,
  ) {
    super(inner);
  }

  override onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    this.relay.upstreamStarted(statusCode);
    super.onResponseStart(controller, statusCode, headers, statusMessage);
  }
}

const NO_CONTROLLER: Dispatcher.DispatchController = {
  aborted: false,
  paused: false,
  reason: null,
  abort() {},
  pause() {},
  resume() {},
};

/** undici refused the request itself: says nothing about the upstream's health. */
function isRequestRefused(error: Error): boolean {
  return "code" in error && error.code === "UND_ERR_INVALID_ARG";
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return (length !== undefined && length !== "0") || req.headers["transfer-encoding"] !== undefined;
}

export function createForward(settings: ForwardSettings): Forward {
  const secureContext = upstreamSecureContext(settings.ca);
  const connect = createUpstreamConnector({ timeoutMs: settings.connectTimeoutMs, secureContext });
  const dispatcherOptions = {
    connect,
    headersTimeout: settings.headersTimeoutMs,
    bodyTimeout: settings.bodyIdleTimeoutMs,
    keepAliveTimeout: settings.keepAliveTimeoutMs ?? 60_000,
  };
  const maxRetries = settings.maxRetries ?? 1;
  const plainHttpClient = settings.plainHttpClient ?? true;
  const pools = new Map<string, Pool>();
  const plainOrigins = new Map<string, PlainHttpOrigin>();
  const unmanaged = new Agent(dispatcherOptions);

  function poolFor(origin: string): Pool {
    let pool = pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, dispatcherOptions);
      pools.set(origin, pool);
    }
    return pool;
  }

  /** A route origin's dispatcher: the plain client (with the pool behind it) for `http:`. */
  function dispatcherFor(origin: string): RequestDispatcher {
    if (!plainHttpClient || !origin.startsWith("http:")) return poolFor(origin);
    let plain = plainOrigins.get(origin);
    if (plain === undefined) {
      plain = new PlainHttpOrigin(origin, {
        connect,
        headersTimeoutMs: settings.headersTimeoutMs,
        bodyTimeoutMs: settings.bodyIdleTimeoutMs,
        keepAliveTimeoutMs: dispatcherOptions.keepAliveTimeout,
        fallback: poolFor(origin),
      });
      plainOrigins.set(origin, plain);
    }
    return plain;
  }

  function dispatch(
    dispatcher: RequestDispatcher,
    req: IncomingMessage,
    res: ServerResponse,
    target: ForwardTarget,
    observer: UpstreamObserver | null,
  ): Promise<ForwardResult> {
    return new Promise((settle) => {
      const relay = new ResponseRelay(res, settle, observer);
      const body = target.body ?? (hasBody(req) ? req : null);
      if (target.body !== undefined) relay.bytesIn = target.body.length;
      else if (body !== null) relay.countRequestBody(req);
      const method = req.method ?? "GET";
      const options: Dispatcher.DispatchOptions = {
        origin: target.origin,
        method,
        path: target.path,
        headers: target.headers,
        body,
        // undici never retries on its own: `retry-policy.ts` decides, through the relay.
        idempotent: false,
      };
      // The scrubber sits next to the relay, so it sees what the client gets (after any filter).
      const scrubbed = target.scrubber
        ? new ResponseScrubber(relay, target.scrubber, relay)
        : relay;
      const decorated = target.wrapHandler ? target.wrapHandler(scrubbed) : scrubbed;
      const handler = decorated === relay ? relay : new UpstreamWatch(decorated, relay);
      const retries = retriesAllowed(method, body !== null, maxRetries);
      if (retries > 0) relay.retryWith(dispatcher, options, retries, handler);
      try {
        dispatcher.dispatch(options, handler);
      } catch (error) {
        // undici refuses some inputs synchronously (e.g. a header value it considers invalid).
        relay.onResponseError(
          NO_CONTROLLER,
          error instanceof Error ? error : new Error(String(error)),
        );
      }
    });
  }

  return {
    forwardToRoute: (req, res, target, observer) =>
      dispatch(dispatcherFor(target.origin), req, res, target, observer ?? null),
    forwardToAddress: (req, res, target) => dispatch(unmanaged, req, res, target, null),
    async close() {
      await Promise.all([...plainOrigins.values()].map((plain) => plain.close()));
      await Promise.all([...pools.values()].map((pool) => pool.close()));
      await unmanaged.close();
    },
  };
}
