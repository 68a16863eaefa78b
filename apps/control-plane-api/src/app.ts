import { randomUUID } from "node:crypto";
import type { OpenAPIHono } from "@hono/zod-openapi";
import { databaseFailureCause, isDatabaseUnavailable } from "@keyway/db";
import {
  contextOf,
  parseTraceparent,
  remoteContext,
  SpanKind,
  SpanStatusCode,
} from "@keyway/observability";
import { bodyLimit } from "hono/body-limit";
import { routePath } from "hono/route";
import { authenticate } from "./auth/authenticate";
import { authenticateGateway } from "./auth/authenticate-gateway";
import { consoleRoutes } from "./console/routes";
import type { AppDeps } from "./deps";
import type { AppEnv } from "./env";
import { DomainError, errorResponse } from "./errors";
import { errorLogFields } from "./logger";
import { requestDeadline } from "./request-deadline";
import { createRouter } from "./router";

/** `/readyz` waits this long for the database's answer (probes should allow a little more). */
const READINESS_TIMEOUT_MS = 2_000;

export type ResourceRoutes = (deps: AppDeps) => OpenAPIHono<AppEnv>;

export interface AppModules {
  /** Routers under `/v1` (authenticated by bearer tokens). */
  public: readonly ResourceRoutes[];
  /** Routers under `/internal/v1` (authenticated by gateway assertions). */
  internal: readonly ResourceRoutes[];
  /** Routers that do their own authentication (OAuth callbacks, webhook ingest, JWKS). */
  open: readonly ResourceRoutes[];
  /**
   * Exact paths under `/v1` that `open` routers serve to GET requests without a bearer token
   * (OAuth2 callbacks, which a provider's redirect reaches with no Keyway credential). Every
   * other `/v1` path stays behind the bearer check.
   */
  unauthenticatedPaths?: readonly string[];
}

/**
 * Builds the control-plane API from explicit dependencies; never listens (`server.ts` does).
 */
export function createApp(deps: AppDeps, modules: AppModules): OpenAPIHono<AppEnv> {
  const app = createRouter();

  app.use(async (c, next) => {
    const incoming = c.req.header("x-request-id");
    const requestId =
      incoming && /^[A-Za-z0-9._-]{1,128}$/.test(incoming) ? incoming : randomUUID();
    c.set("requestId", requestId);
    c.header("x-request-id", requestId);
    const started = performance.now();
    // W3C trace context: a gateway's resolution carries the sandbox request's trace.
    const parent = parseTraceparent(c.req.header("traceparent"));
    const span = deps.tracer?.startSpan(
      `${c.req.method} ${c.req.path.startsWith("/internal/") ? "internal" : "request"}`,
      { kind: SpanKind.SERVER, attributes: { "http.request.method": c.req.method } },
      parent === null ? undefined : remoteContext(parent),
    );
    c.set("traceId", span?.spanContext().traceId ?? parent?.traceId);
    c.set("traceContext", span === undefined ? undefined : contextOf(span));
    try {
      await next();
    } finally {
      const route = routePath(c, -1);
      const status = c.res.status;
      const seconds = (performance.now() - started) / 1000;
      deps.metrics.requests.inc(c.req.method, route, String(status));
      deps.metrics.duration.observe(seconds, c.req.method, route);
      if (span !== undefined) {
        span.updateName(`${c.req.method} ${route}`);
        span.setAttribute("http.route", route);
        span.setAttribute("http.response.status_code", status);
        if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      }
      const principal = c.get("principal");
      const traceId = c.get("traceId");
      deps.logger.info("request", {
        requestId,
        method: c.req.method,
        path: c.req.path,
        status,
        durationMs: Math.round(seconds * 100_000) / 100,
        ...(traceId === undefined ? {} : { traceId }),
        ...(principal ? { principalKind: principal.kind, actor: principal.actor } : {}),
      });
    }
  });

  app.use(
    requestDeadline({
      database: deps.database,
      timeoutMs: deps.settings.requestTimeoutMs,
      logger: deps.logger,
    }),
  );

  // JSON bodies: bounded size (413) and the right media type (415) before anything parses them.
  app.use(
    "/v1/*",
    bodyLimit({
      maxSize: deps.settings.maxJsonBodyBytes,
      onError: () => {
        throw new DomainError(
          "payload_too_large",
          "payload_too_large",
          `request body exceeds ${deps.settings.maxJsonBodyBytes} bytes`,
        );
      },
    }),
  );
  app.use("/v1/*", async (c, next) => {
    const hasBody =
      c.req.header("content-length") !== undefined && c.req.header("content-length") !== "0";
    const chunked = c.req.header("transfer-encoding") !== undefined;
    if (["POST", "PUT", "PATCH"].includes(c.req.method) && (hasBody || chunked)) {
      const type = c.req.header("content-type")?.split(";")[0]?.trim().toLowerCase();
      if (type !== "application/json") {
        throw new DomainError(
          "unsupported_media_type",
          "unsupported_media_type",
          "request bodies must be application/json",
        );
      }
    }
    await next();
  });
  const bearer = authenticate(deps);
  const unauthenticated = new Set(modules.unauthenticatedPaths ?? []);
  app.use("/v1/*", (c, next) =>
    c.req.method === "GET" && unauthenticated.has(c.req.path) ? next() : bearer(c, next),
  );
  app.use("/internal/v1/*", authenticateGateway(deps));

  // Prometheus text: the operator's scraper reaches it on the API port (keep it off the public
  // ingress, like `/readyz`; docs/operations.md).
  app.get("/metrics", async (c) => {
    c.header("cache-control", "no-store");
    return c.body(await deps.metrics.registry.render(), 200, {
      "content-type": deps.metrics.registry.contentType,
    });
  });

  // Alive: the process answers. Ready: it can serve, which needs its database.
  app.get("/healthz", (c) => c.json({ ok: true }));
  app.get("/readyz", async (c) => {
    const database = await deps.database.ping(READINESS_TIMEOUT_MS);
    c.header("cache-control", "no-store");
    return c.json({ ready: database, checks: { database } }, database ? 200 : 503);
  });
  app.get("/.well-known/jwks.json", (c) => {
    c.header("cache-control", "public, max-age=60");
    return c.json(deps.sessionSigner.jwks());
  });

  for (const routes of [...modules.public, ...modules.internal, ...modules.open])
    app.route("/", routes(deps));
  // The console calls the API through the API's own request handler, as any client would.
  app.route("/console", consoleRoutes(deps, { fetchApi: (request) => app.fetch(request) }));

  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: { title: "Keyway control plane API", version: "1" },
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
  });

  app.notFound((c) => errorResponse(new DomainError("not_found", "not_found", "no such route"), c));
  app.onError((error, c) => {
    if (!(error instanceof DomainError)) {
      // Never the failed query: drizzle's wrapper quotes the SQL and its parameters. An
      // unreachable database is logged by its cause (ECONNREFUSED, 57P01, a timeout), which
      // holds no values; anything else by SQLSTATE and constraint only.
      const requestId = c.get("requestId");
      if (isDatabaseUnavailable(error)) {
        const { name, code, message } = databaseFailureCause(error);
        deps.logger.warn("database unavailable", { requestId, error: name, code, message });
      } else {
        deps.logger.error("unhandled error", { requestId, ...errorLogFields(error) });
      }
    }
    return errorResponse(error, c);
  });
  return app;
}
