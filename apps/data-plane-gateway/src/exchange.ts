import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { normalizeHost } from "@keyway/integrations-core";
import { parseAuthority, splitAbsoluteForm } from "./authority";
import { asGatewayError, GatewayError } from "./errors";
import type { Logger } from "./logger";
import type { Authenticate, Session } from "./pipeline/authenticate";
import type { AuthorizeEgress } from "./pipeline/authorize";
import type { Classify, SessionPlan } from "./pipeline/classify";
import type { Forward, ForwardResult } from "./pipeline/forward";
import { type InjectCredential, stripHopByHop } from "./pipeline/inject";
import type { ExchangeRecord, RecordExchange } from "./pipeline/record";
import type { ResolveCredential } from "./pipeline/resolve-credential";
import { sendError } from "./responses";

/**
 * One proxied HTTP request through the stages, in order: authenticate → classify → authorize
 * (unmanaged hosts) or resolve credential → inject (routes) → forward → record. Used for plain
 * absolute-form requests on the proxy port and for requests inside an intercepted tunnel.
 */

export interface ExchangeStages {
  authenticate: Authenticate;
  classify: Classify;
  authorizeEgress: AuthorizeEgress;
  resolveCredential: ResolveCredential;
  injectCredential: InjectCredential;
  forward: Forward;
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

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The W3C trace id the client sent, else a fresh one. */
function traceIdOf(req: IncomingMessage): string {
  const header = req.headers.traceparent;
  const match = typeof header === "string" ? TRACEPARENT.exec(header) : null;
  return match?.[1] ?? randomUUID().replaceAll("-", "");
}

function newRecord(kind: ExchangeRecord["kind"], req: IncomingMessage): ExchangeRecord {
  return {
    kind,
    startedAt: performance.now(),
    traceId: traceIdOf(req),
    sessionId: undefined,
    routeId: undefined,
    bindingId: undefined,
    method: req.method ?? "",
    host: undefined,
    status: 0,
    bytesIn: 0,
    bytesOut: 0,
    outcome: "",
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
  ): Promise<ForwardResult> {
    const method = req.method ?? "";
    const match = classify.classifyRequest(plan, { authority, method, rawPath });
    if (match.kind === "matched") {
      const { route } = match;
      rec.routeId = route.id;
      rec.bindingId = route.bindingId;
      const pending = resolveCredential.resolveRouteCredential(session, plan.digest, route);
      const credential = typeof pending === "object" && pending !== null ? await pending : pending;
      const upstream = stages.injectCredential(req.rawHeaders, rawPath, route, credential);
      return forward.forwardToRoute(req, res, upstream);
    }
    // Inside a tunnel the host is the managed CONNECT host, so this is a plain request only.
    if (inTunnel) throw MISDIRECTED;
    const target = parseAuthority(authority, 80);
    if (target === null) throw BAD_AUTHORITY;
    const destination = await stages.authorizeEgress(plan.plan, {
      host: match.host,
      hostname: target.hostname,
      port: target.port,
    });
    const address = destination.family === 6 ? `[${destination.address}]` : destination.address;
    return forward.forwardToAddress(req, res, {
      origin: `http://${address}:${destination.port}`,
      path: rawPath,
      headers: stripHopByHop(req.rawHeaders, authority),
    });
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
      let session: Session;
      let plan: SessionPlan;
      if (tunnel === null) {
        session = await authenticate.authenticateSession(req.headers["proxy-authorization"]);
        rec.sessionId = session.sessionId;
        const loading = classify.loadSessionPlan(session.planDigest);
        plan = "then" in loading ? await loading : loading;
      } else {
        session = tunnel.session;
        rec.sessionId = session.sessionId;
        authenticate.assertSessionLive(session);
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

  return {
    handleProxyRequest(req, res) {
      const rec = newRecord("http", req);
      const target = splitAbsoluteForm(req.url ?? "");
      if (target === null) {
        rec.status = NOT_ABSOLUTE.status;
        rec.outcome = NOT_ABSOLUTE.code;
        sendError(res, NOT_ABSOLUTE);
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
      const failure =
        host === undefined || normalizeHost(host) !== tunnel.host
          ? MISDIRECTED
          : req.url?.charCodeAt(0) !== 0x2f
            ? NOT_ORIGIN_FORM
            : null;
      if (failure !== null) {
        rec.sessionId = tunnel.session.sessionId;
        rec.status = failure.status;
        rec.outcome = failure.code;
        sendError(res, failure, true);
        stages.recordExchange(rec);
        return;
      }
      void run(rec, req, res, tunnel, tunnel.authority, req.url ?? "/");
    },
  };
}
