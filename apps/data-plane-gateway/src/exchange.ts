import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { normalizeHost } from "@keyway/integrations-core";
import { type Logger, newTraceId, parseTraceparent } from "@keyway/observability";
import { hasFragment, parseAuthority, splitAbsoluteForm } from "./authority";
import { asGatewayError, GatewayError } from "./errors";
import type { McpAnswer, ScreenMcpRequest } from "./mcp/mcp-guard";
import type { Authenticate, Session } from "./pipeline/authenticate";
import type { AuthorizeEgress } from "./pipeline/authorize";
import type { Classify, SessionPlan } from "./pipeline/classify";
import type { Forward, ForwardResult } from "./pipeline/forward";
import { type InjectCredential, stripHopByHop } from "./pipeline/inject";
import type { ExchangeRecord, RecordExchange } from "./pipeline/record";
import type { ResolveCredential } from "./pipeline/resolve-credential";
import type { CircuitBreakers } from "./resilience/circuit-breaker";
import type { AdmitRouteRequest } from "./resilience/rate-limiter";
import { sendError } from "./responses";
import {
  isWebSocketUpgrade,
  type RelayWebSocket,
  responseForUpgrade,
  upgradeRefusal,
} from "./websocket-relay";

/**
 * One proxied HTTP request through the stages, in order: authenticate → classify → authorize
 * (unmanaged hosts) or [MCP allow-list →] resolve credential → inject (routes) → forward → record. Used for plain
 * absolute-form requests on the proxy port and for requests inside an intercepted tunnel.
 */

export interface ExchangeStages {
  authenticate: Authenticate;
  classify: Classify;
  authorizeEgress: AuthorizeEgress;
  resolveCredential: ResolveCredential;
  injectCredential: InjectCredential;
  /** Routes with an MCP tool allow-list only: checks the body before any credential is resolved. */
  screenMcpRequest: ScreenMcpRequest;
  forward: Forward;
  /** WebSocket handshakes, in place of `forward` (`websocket-relay.ts`). */
  relayWebSocket: RelayWebSocket;
  /** Per-route token bucket: throws 429 `rate_limited`. Absent: no limit. */
  admitRouteRequest?: AdmitRouteRequest | undefined;
  /** Per-upstream circuit breakers: 503 `upstream_circuit_open`. Absent: none. */
  circuitBreakers?: CircuitBreakers | undefined;
  recordExchange: RecordExchange;
  logger: Logger;
}

/** What an intercepted tunnel established at `CONNECT` time. */
export interface TunnelContext {
  readonly session: Session;
  readonly plan: SessionPlan;
  /** The CONNECT authority as sent, and its normalized host (what inner `Host` must equal). */
  readonly authority: string;
  readonly host: string;
}

export interface Exchange {
  /** A request on the proxy port: absolute-form `http://` targets only. */
  handleProxyRequest(req: IncomingMessage, res: ServerResponse): void;
  /** A request decrypted from an intercepted tunnel. */
  handleTunnelRequest(req: IncomingMessage, res: ServerResponse, tunnel: TunnelContext): void;
  /** An `Upgrade` request on the proxy port (the server's `upgrade` event). */
  handleProxyUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** An `Upgrade` request inside an intercepted tunnel. */
  handleTunnelUpgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    tunnel: TunnelContext,
  ): void;
}

const NOT_ABSOLUTE = new GatewayError(
  "bad_request",
  "send absolute-form http:// requests, or CONNECT for https",
);
const NOT_ORIGIN_FORM = new GatewayError("bad_request", "expected an origin-form request target");
const MISDIRECTED = new GatewayError(
  "misdirected_request",
  "the request's Host does not match the CONNECT host",
);
const BAD_AUTHORITY = new GatewayError("bad_request", "the request host is malformed");
const FRAGMENT = new GatewayError("bad_request", "a request target cannot hold a fragment (#)");

function newRecord(kind: ExchangeRecord["kind"], req: IncomingMessage): ExchangeRecord {
  // The W3C trace the client sent, else a fresh trace id.
  const traceParent = parseTraceparent(req.headers.traceparent);
  return {
    kind,
    startedAt: performance.now(),
    traceId: traceParent?.traceId ?? newTraceId(),
    traceParent,
    sessionId: undefined,
    routeId: undefined,
    bindingId: undefined,
    upstream: undefined,
    method: req.method ?? "",
    host: undefined,
    status: 0,
    bytesIn: 0,
    bytesOut: 0,
    outcome: "",
    reason: undefined,
    scrubbedHeaders: 0,
    scrubbedBody: 0,
  };
}

export function createExchange(stages: ExchangeStages): Exchange {
  const { authenticate, classify, resolveCredential, forward } = stages;

  async function forwardRequest(
    rec: ExchangeRecord,
    req: IncomingMessage,
    res: ServerResponse,
    session: Session,
    plan: SessionPlan,
    authority: string,
    rawPath: string,
    inTunnel: boolean,
  ): Promise<ForwardResult | McpAnswer> {
    const method = req.method ?? "";
    const match = classify.classifyRequest(plan, { authority, method, rawPath });
    if (match.kind === "matched") {
      const { route } = match;
      rec.routeId = route.id;
      rec.bindingId = route.bindingId;
      rec.upstream = route.upstream.baseUrl;
      stages.admitRouteRequest?.(route);
      const circuit = stages.circuitBreakers?.circuitFor(route) ?? null;
      const probe = circuit?.admit() ?? false;
      try {
        const mcp =
          route.mcp?.toolAllowlist === undefined
            ? null
            : await stages.screenMcpRequest(req, res, route);
        if (mcp?.kind === "answered") return mcp.answer;
        const pending = resolveCredential.resolveRouteCredential(session, route, rec);
        const credential =
          typeof pending === "object" && pending !== null ? await pending : pending;
        const upstream = stages.injectCredential(req.rawHeaders, rawPath, route, credential);
        if (isWebSocketUpgrade(req)) {
          return await stages.relayWebSocket(req, res, upstream, circuit, session.sessionId);
        }
        return await forward.forwardToRoute(
          req,
          res,
          mcp === null ? upstream : mcp.prepare(upstream),
          circuit,
        );
      } finally {
        // A probe that ended without reaching the upstream lets the next request probe.
        if (probe) circuit?.releaseProbe();
      }
    }
    // Inside a tunnel the host is the managed CONNECT host, so this is a plain request only.
    if (inTunnel) throw MISDIRECTED;
    const target = parseAuthority(authority, 80);
    if (target === null) throw BAD_AUTHORITY;
    const destination = await stages.authorizeEgress(plan, target);
    const address = destination.family === 6 ? `[${destination.address}]` : destination.address;
    const unmanaged = {
      origin: `http://${address}:${destination.port}`,
      path: rawPath,
      headers: stripHopByHop(req.rawHeaders, authority),
    };
    if (isWebSocketUpgrade(req)) {
      return stages.relayWebSocket(req, res, unmanaged, null, session.sessionId);
    }
    return forward.forwardToAddress(req, res, unmanaged);
  }

  async function run(
    rec: ExchangeRecord,
    req: IncomingMessage,
    res: ServerResponse,
    tunnel: TunnelContext | null,
    authority: string,
    rawPath: string,
  ): Promise<void> {
    try {
      const refusal = upgradeRefusal(req);
      if (refusal !== null) throw refusal;
      let session: Session;
      let plan: SessionPlan;
      if (tunnel === null) {
        const header = req.headers["proxy-authorization"];
        // A sandbox's next request finds its session cached: no promise, no await.
        session =
          authenticate.cachedSession(header) ?? (await authenticate.authenticateSession(header));
        rec.sessionId = session.sessionId;
        const loading = classify.loadSessionPlan(session.planDigest);
        plan = "then" in loading ? await loading : loading;
      } else {
        session = tunnel.session;
        rec.sessionId = session.sessionId;
        // Settled at once unless a resync voided the session's confirmation.
        const live = authenticate.ensureSessionLive(session);
        if (live !== undefined) await live;
        plan = tunnel.plan;
      }
      const result = await forwardRequest(
        rec,
        req,
        res,
        session,
        plan,
        authority,
        rawPath,
        tunnel !== null,
      );
      rec.status = result.status;
      rec.outcome = result.outcome;
      rec.bytesIn = result.bytesIn;
      rec.bytesOut = result.bytesOut;
      if ("reason" in result) rec.reason = result.reason;
      if ("scrubbedBody" in result) {
        rec.scrubbedHeaders = result.scrubbedHeaders;
        rec.scrubbedBody = result.scrubbedBody;
      }
    } catch (error) {
      const failure = asGatewayError(error);
      if (failure.code === "internal_error") {
        stages.logger.error("request failed", {
          traceId: rec.traceId,
          error: error instanceof Error ? error.name : "unknown",
        });
      }
      rec.status = failure.status;
      rec.outcome = failure.code;
      // Inside a tunnel a 407 cannot be answered with new credentials: close, so the client
      // opens a new CONNECT with a fresh token.
      sendError(res, failure, tunnel !== null && failure.status === 407);
    }
    stages.recordExchange(rec);
  }

  const exchange: Exchange = {
    handleProxyRequest(req, res) {
      const rec = newRecord("http", req);
      const url = req.url ?? "";
      // A fragment is refused like a parse error: answered and the connection closed.
      const fragment = hasFragment(url);
      const target = fragment ? null : splitAbsoluteForm(url);
      if (target === null) {
        const failure = fragment ? FRAGMENT : NOT_ABSOLUTE;
        rec.status = failure.status;
        rec.outcome = failure.code;
        sendError(res, failure, fragment);
        stages.recordExchange(rec);
        return;
      }
      rec.host = target.authority;
      void run(rec, req, res, null, target.authority, target.rawPath);
    },

    handleTunnelRequest(req, res, tunnel) {
      const rec = newRecord("intercepted", req);
      rec.host = tunnel.host;
      const host = req.headers.host;
      const url = req.url ?? "";
      const failure =
        host === undefined || normalizeHost(host) !== tunnel.host
          ? MISDIRECTED
          : url.charCodeAt(0) !== 0x2f
            ? NOT_ORIGIN_FORM
            : hasFragment(url)
              ? FRAGMENT
              : null;
      if (failure !== null) {
        rec.sessionId = tunnel.session.sessionId;
        rec.status = failure.status;
        rec.outcome = failure.code;
        sendError(res, failure, true);
        stages.recordExchange(rec);
        return;
      }
      void run(rec, req, res, tunnel, tunnel.authority, url);
    },

    handleProxyUpgrade(req, socket, head) {
      const res = responseForUpgrade(req, socket, head);
      if (res !== null) exchange.handleProxyRequest(req, res);
    },

    handleTunnelUpgrade(req, socket, head, tunnel) {
      const res = responseForUpgrade(req, socket, head);
      if (res !== null) exchange.handleTunnelRequest(req, res, tunnel);
    },
  };
  return exchange;
}
