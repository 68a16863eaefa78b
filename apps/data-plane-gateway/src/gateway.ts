import { createServer, type Server } from "node:http";
import type { Duplex } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { Clock, SessionTokenVerifier } from "@keyway/crypto";
import type { Logger, Tracer } from "@keyway/observability";
import { createMetricsRegistry, type MetricsRegistry } from "@keyway/observability";
import type { IssueLeafCertificate } from "@keyway/x509";
import { createAdminServer } from "./admin-server";
import { createConnectHandler } from "./connect-tunnel";
import type { ControlPlaneClient, EventStream } from "./control-plane-client";
import { GatewayError } from "./errors";
import { createExchange, type TunnelContext } from "./exchange";
import { createGatewayMetrics } from "./gateway-metrics";
import { createInvalidationHub, type InvalidationHub } from "./invalidations";
import { createLeafContexts } from "./leaf-certificates";
import { createMcpGuard } from "./mcp/mcp-guard";
import { createAuthenticate } from "./pipeline/authenticate";
import { createAuthorize, type EgressSettings, type ResolveHost } from "./pipeline/authorize";
import { createClassify } from "./pipeline/classify";
import { createForward, type ForwardSettings } from "./pipeline/forward";
import { createInject } from "./pipeline/inject";
import { createRecord } from "./pipeline/record";
import { createResolveCredential } from "./pipeline/resolve-credential";
import { createPlanCache } from "./plan-cache";
import { type CircuitBreakerSettings, createCircuitBreakers } from "./resilience/circuit-breaker";
import { createRouteRateLimiter, type RateLimitSettings } from "./resilience/rate-limiter";
import { writeSocketError } from "./responses";
import { createSessionLiveness, type SessionLiveness } from "./session-liveness";
import { createTunnels } from "./tunnels";
import { createWebSocketRelay } from "./websocket-relay";

/**
 * Builds the egress gateway from explicit dependencies and never listens: `main.ts` (or a test)
 * calls `listen` on `proxyServer` and `adminServer`, and `start()` to connect the event feed.
 */

export interface GatewaySettings {
  egress: EgressSettings;
  upstream: ForwardSettings;
  credentials?: { expiryMarginMs?: number; maxTtlMs?: number };
  /**
   * Memory for what the request path keeps (`gateway.caches`), in approximate bytes: plans
   * (default 64 MiB) and verified session tokens (default 16 MiB). Credentials, rate-limit
   * buckets and other per-route state belong to a cached plan's routes and go with it.
   */
  caches?: { planBytes?: number; sessionBytes?: number };
  /**
   * Session liveness (`session-liveness.ts`): re-confirmation period of sessions in use (default
   * 10 s), how long confirmations outlive an unreachable control plane (default 5 min), and how
   * long revocations of sessions with an unknown end are remembered (default 24 h).
   */
  liveness?: { recheckMs?: number; outageGraceMs?: number; revocationRetentionMs?: number };
  /**
   * Sandbox-side timeouts. Defaults: request headers 30 s, idle keep-alive 60 s, and a socket
   * silent for 330 s is closed (longer than the upstream's default header timeout, so a slow
   * upstream gets its 504 first).
   */
  proxy?: { headersTimeoutMs?: number; keepAliveTimeoutMs?: number; idleTimeoutMs?: number };
  /** Per-route token bucket (429 `rate_limited`). Absent: no limit. */
  rateLimit?: RateLimitSettings | undefined;
  /** Per-upstream circuit breaker (503 `upstream_circuit_open`). Absent: none. */
  circuitBreaker?: CircuitBreakerSettings | undefined;
}

export interface GatewayDeps {
  controlPlane: ControlPlaneClient;
  /** Verifies session tokens against the control plane's JWKS. */
  verifier: SessionTokenVerifier;
  /** Fetches the session-signing JWKS once; the gateway is not ready before it succeeds. */
  loadJwks(): Promise<void>;
  /** Issues leaf certificates from the deployment's gateway CA. */
  issueLeaf: IssueLeafCertificate;
  clock: Clock;
  logger: Logger;
  /** Spans of credential resolutions; absent when traces are off (`[telemetry]`). */
  tracer?: Tracer | undefined;
  /** DNS for unmanaged egress; the system resolver by default. */
  resolveHost?: ResolveHost;
  settings: GatewaySettings;
}

export interface Gateway {
  proxyServer: Server;
  adminServer: Server;
  metrics: MetricsRegistry;
  invalidations: InvalidationHub;
  /** Starts the invalidation feed and the JWKS load. */
  start(): void;
  /** Settles once the gateway is ready for the first time (JWKS loaded, feed connected). */
  ready(): Promise<void>;
  isReady(): boolean;
  close(): Promise<void>;
}

const PARSE_ERROR = new GatewayError("bad_request", "the request could not be parsed");
const PARSE_STATUS: Readonly<Record<string, number>> = {
  HPE_HEADER_OVERFLOW: 431,
  ERR_HTTP_REQUEST_TIMEOUT: 408,
};

export function createGateway(deps: GatewayDeps): Gateway {
  const { settings, logger, clock } = deps;
  const metrics = createMetricsRegistry();
  const gatewayMetrics = createGatewayMetrics(metrics);
  const invalidations = createInvalidationHub();

  const liveness: SessionLiveness = createSessionLiveness({
    source: {
      // Only the plans not in memory are asked for with the liveness answer (then not fetched
      // again): a new session on a new plan costs one internal request before its credential.
      checkSessions: (sessionIds, planDigests) =>
        deps.controlPlane.checkSessions(
          sessionIds,
          planDigests?.filter((digest) => plans.cached(digest) === undefined),
        ),
    },
    clock,
    invalidations,
    logger,
    ...settings.liveness,
  });
  const authenticate = createAuthenticate({
    verifier: deps.verifier,
    clock,
    invalidations,
    liveness,
    ...(settings.caches?.sessionBytes !== undefined
      ? { cacheBytes: settings.caches.sessionBytes }
      : {}),
  });
  const plans = createPlanCache({
    source: deps.controlPlane,
    ...(settings.caches?.planBytes !== undefined ? { maxBytes: settings.caches.planBytes } : {}),
    observer: { fetched: (outcome) => gatewayMetrics.planFetches.inc(outcome) },
  });
  metrics.gauge(
    "keyway_gateway_plan_cache_bytes",
    "Approximate bytes of the plans kept in memory.",
    () => plans.stats().bytes,
  );
  metrics.gauge(
    "keyway_gateway_plan_cache_plans",
    "Plans kept in memory.",
    () => plans.stats().plans,
  );
  const classify = createClassify({ plans });
  const authorizeEgress = createAuthorize({
    egress: settings.egress,
    ...(deps.resolveHost ? { resolveHost: deps.resolveHost } : {}),
  });
  const resolveCredential = createResolveCredential({
    source: deps.controlPlane,
    clock,
    invalidations,
    tracer: deps.tracer,
    observer: {
      hit: () => gatewayMetrics.credentialCache.inc("hit"),
      miss: () => gatewayMetrics.credentialCache.inc("miss"),
    },
    ...settings.credentials,
  });
  const injectCredential = createInject();
  const screenMcpRequest = createMcpGuard();
  const forward = createForward(settings.upstream);
  const recordExchange = createRecord({ logger, metrics: gatewayMetrics });
  const tunnels = createTunnels(invalidations);
  const leafContexts = createLeafContexts({ issue: deps.issueLeaf, clock });
  const relayWebSocket = createWebSocketRelay({
    ...settings.upstream,
    idleTimeoutMs: settings.upstream.bodyIdleTimeoutMs,
    track: tunnels.track,
  });
  const admitRouteRequest =
    settings.rateLimit === undefined
      ? undefined
      : createRouteRateLimiter({
          settings: settings.rateLimit,
          clock,
          onLimited: (route) => gatewayMetrics.rateLimited.inc(route.upstream.baseUrl),
        });
  const circuitBreakers =
    settings.circuitBreaker === undefined
      ? undefined
      : createCircuitBreakers({
          settings: settings.circuitBreaker,
          clock,
          onStateChange(origin, state) {
            gatewayMetrics.circuitTransitions.inc(origin, state);
            logger.warn("upstream circuit state changed", { upstream: origin, state });
          },
        });

  const exchange = createExchange({
    authenticate,
    classify,
    authorizeEgress,
    resolveCredential,
    injectCredential,
    screenMcpRequest,
    forward,
    relayWebSocket,
    admitRouteRequest,
    circuitBreakers,
    recordExchange,
    logger,
  });

  // Node's parser refuses smuggling shapes (CL+TE, duplicate CL, bad chunking) only while the
  // lenient parser stays off: it is set off explicitly on both servers.
  const serverOptions = {
    insecureHTTPParser: false,
    // Uploads may be long; idle sockets are bounded by `timeout` below instead.
    requestTimeout: 0,
    headersTimeout: settings.proxy?.headersTimeoutMs ?? 30_000,
    keepAliveTimeout: settings.proxy?.keepAliveTimeoutMs ?? 60_000,
    noDelay: true,
  };

  /** Decrypted tunnels and what their CONNECT established. */
  const tunnelContexts = new WeakMap<Duplex, TunnelContext>();
  const interceptedServer = createServer(serverOptions, (req, res) => {
    const tunnel = tunnelContexts.get(req.socket);
    if (tunnel === undefined) {
      res.destroy();
      return;
    }
    exchange.handleTunnelRequest(req, res, tunnel);
  });
  interceptedServer.on("upgrade", (req, socket: Duplex, head: Buffer) => {
    const tunnel = tunnelContexts.get(req.socket);
    if (tunnel === undefined) {
      socket.destroy();
      return;
    }
    exchange.handleTunnelUpgrade(req, socket, head, tunnel);
  });

  const proxyServer = createServer(serverOptions, exchange.handleProxyRequest);
  // With an `upgrade` listener every `Upgrade` request comes here (WebSocket or not).
  proxyServer.on("upgrade", exchange.handleProxyUpgrade);
  // Also applies to tunnel sockets handed over with `emit("connection")`, which the server does
  // not track for its header timeouts because it never listens.
  const idleTimeoutMs = settings.proxy?.idleTimeoutMs ?? 330_000;
  proxyServer.timeout = idleTimeoutMs;
  interceptedServer.timeout = idleTimeoutMs;
  proxyServer.on(
    "connect",
    createConnectHandler({
      authenticate,
      classify,
      authorizeEgress,
      leafContexts,
      tunnels,
      recordExchange,
      connectTimeoutMs: settings.upstream.connectTimeoutMs,
      firstByteTimeoutMs: settings.proxy?.headersTimeoutMs ?? 30_000,
      deliverIntercepted(socket, context, firstBytes) {
        tunnelContexts.set(socket, context);
        interceptedServer.emit("connection", socket);
        if (firstBytes !== null) {
          // The server reads a plain socket through its `data` events (it took the socket's
          // handle on `connection`): replay the bytes already read, then let it flow.
          socket.emit("data", firstBytes);
          socket.resume();
        }
      },
    }),
  );

  function onClientError(error: Error & { code?: string }, socket: Duplex): void {
    if (error.code === "ECONNRESET" || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = PARSE_STATUS[error.code ?? ""] ?? 400;
    const tunnel = tunnelContexts.get(socket);
    writeSocketError(socket, PARSE_ERROR, status);
    recordExchange({
      kind: tunnel === undefined ? "http" : "intercepted",
      startedAt: performance.now(),
      traceId: "",
      sessionId: tunnel?.session.sessionId,
      routeId: undefined,
      upstream: undefined,
      bindingId: undefined,
      method: "",
      host: tunnel?.host,
      status,
      bytesIn: 0,
      bytesOut: 0,
      outcome: "bad_request",
    });
  }
  proxyServer.on("clientError", onClientError);
  interceptedServer.on("clientError", onClientError);

  let jwksLoaded = false;
  let events: EventStream | undefined;
  let closed = false;
  const closing = new AbortController();
  let markReady: () => void = () => {};
  const firstReady = new Promise<void>((resolve) => {
    markReady = resolve;
  });

  /**
   * Ready means this gateway can serve: the signing keys are loaded, and the event feed is
   * connected or was lost less than the liveness outage grace ago. Within the grace, sessions
   * confirmed before the outage are still served (with the credentials cached for them); after
   * it no session confirmed before can be, so the gateway stops taking traffic. Before the feed
   * first connects no session can be confirmed at all.
   */
  function readiness() {
    const connected = events?.connected ?? false;
    const lostAtMs = events?.disconnectedAtMs;
    const withinOutageGrace =
      connected ||
      (lostAtMs !== undefined && clock.now().getTime() - lostAtMs <= liveness.outageGraceMs);
    const checks = { jwks: jwksLoaded, events: connected, withinOutageGrace };
    return { ready: checks.jwks && withinOutageGrace, checks };
  }

  const adminServer = createAdminServer({ metrics, readiness });

  async function loadJwksUntilDone(): Promise<void> {
    // Retried at least every 2 s: the gateway is not ready before it has the keys.
    for (let delayMs = 250; !closed; delayMs = Math.min(delayMs * 2, 2_000)) {
      try {
        await deps.loadJwks();
        jwksLoaded = true;
        return;
      } catch (error) {
        logger.warn("session JWKS unavailable", {
          error: error instanceof Error ? error.message : String(error),
        });
      }
      try {
        await sleep(delayMs, undefined, { signal: closing.signal });
      } catch {
        return;
      }
    }
  }

  return {
    proxyServer,
    adminServer,
    metrics,
    invalidations,

    start() {
      if (events !== undefined) return;
      events = deps.controlPlane.startEvents(invalidations);
      liveness.start();
      const stream = events;
      void Promise.all([loadJwksUntilDone(), stream.firstReady]).then(() => {
        if (!closed) markReady();
      });
    },

    ready: () => firstReady,
    isReady: () => readiness().ready,

    async close() {
      closed = true;
      closing.abort();
      await events?.close();
      tunnels.destroyAll();
      tunnels.close();
      authenticate.close();
      liveness.close();
      resolveCredential.close();
      await Promise.all(
        [proxyServer, adminServer, interceptedServer].map(
          (server) =>
            new Promise<void>((resolve) => {
              if (!server.listening) {
                server.closeAllConnections();
                resolve();
                return;
              }
              server.close(() => resolve());
              server.closeAllConnections();
            }),
        ),
      );
      await forward.close();
    },
  };
}
