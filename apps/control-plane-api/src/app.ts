import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import { getRequestListener } from "@hono/node-server";
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { routePath } from "hono/route";
import { authenticate } from "./auth/authenticate";
import { authenticateGateway } from "./auth/authenticate-gateway";
import { consoleRoutes } from "./console/routes";
import type { AppDeps } from "./deps";
import type { AppEnv } from "./env";
import { DomainError, errorResponse, logRequestFailure } from "./errors";
import { nodeRequest } from "./request-body";
import { requestDeadline, requestScoped } from "./request-deadline";
import { createRequestObserver, type ObservedHeaders, observedHeadersOf } from "./request-observer";
import { createRouter } from "./router";

/** `/readyz` waits this long for the database's answer (probes should allow a little more). */
const READINESS_TIMEOUT_MS = 2_000;

export type ResourceRoutes = (deps: AppDeps) => OpenAPIHono<AppEnv>;

/**
 * A plain Node handler in front of hono for one hot route: it answers the requests it takes (true)
 * exactly as the route's hono handler would, and leaves every other request to hono (false).
 */
export type FrontDoor = (incoming: IncomingMessage, outgoing: ServerResponse) => boolean;

/** A route served by hono and, through the HTTP server, by a front door over the same state. */
export type FrontDoorRoutes = (deps: AppDeps) => {
  routes: OpenAPIHono<AppEnv>;
  frontDoor: FrontDoor;
};

export interface AppModules {
  /** Routers under `/v1` (authenticated by bearer tokens). */
  public: readonly ResourceRoutes[];
  /** Routers under `/internal/v1` (authenticated by gateway assertions). */
  internal: readonly ResourceRoutes[];
  /** Routers that do their own authentication (OAuth callbacks). */
  open: readonly ResourceRoutes[];
  /** Open routes with a front door (webhook ingest): `createApiListener` puts it before hono. */
  frontDoors?: readonly FrontDoorRoutes[];
  /**
   * Exact paths under `/v1` that `open` routers serve to GET requests without a bearer token
   * (OAuth2 callbacks, which a provider's redirect reaches with no Keyway credential). Every
   * other `/v1` path stays behind the bearer check.
   */
  unauthenticatedPaths?: readonly string[];
}

/**
 * Builds the control-plane API from explicit dependencies; never listens (`server.ts` does).
 * Every route is hono's here, front-door routes included (tests drive it with `app.request`).
 */
export function createApp(deps: AppDeps, modules: AppModules): OpenAPIHono<AppEnv> {
  return buildApp(deps, modules).app;
}

/**
 * The API as the HTTP server's request listener: the front doors first, then hono (through
 * `@hono/node-server`, as `createAdaptorServer` would serve it).
 */
export function createApiListener(
  deps: AppDeps,
  modules: AppModules,
): { app: OpenAPIHono<AppEnv>; listener: RequestListener } {
  const { app, frontDoors } = buildApp(deps, modules);
  const viaHono = getRequestListener(app.fetch);
  return {
    app,
    listener(incoming, outgoing) {
      for (const frontDoor of frontDoors) if (frontDoor(incoming, outgoing)) return;
      void viaHono(incoming, outgoing);
    },
  };
}

function buildApp(
  deps: AppDeps,
  modules: AppModules,
): { app: OpenAPIHono<AppEnv>; frontDoors: FrontDoor[] } {
  const app = createRouter();
  // Request code gets a handle that cannot begin a transaction: theirs are the request's
  // (`c.var.db`, bound by its deadline). `deps` itself stays for the deadline's own binding.
  const routeDeps = requestScoped(deps);

  const observeRequest = createRequestObserver(deps);
  app.use(async (c, next) => {
    const observed = observeRequest(c.req.method, c.req.path, requestHeaders(c));
    c.set("requestId", observed.requestId);
    c.set("traceId", observed.traceId);
    c.set("traceContext", observed.traceContext);
    c.header("x-request-id", observed.requestId);
    try {
      await next();
    } finally {
      observed.end(routePath(c, -1), c.res.status, c.get("principal"));
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
  const bearer = authenticate(routeDeps);
  const unauthenticated = new Set(modules.unauthenticatedPaths ?? []);
  app.use("/v1/*", (c, next) =>
    c.req.method === "GET" && unauthenticated.has(c.req.path) ? next() : bearer(c, next),
  );
  app.use("/internal/v1/*", authenticateGateway(routeDeps));

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
    app.route("/", routes(routeDeps));
  const frontDoors: FrontDoor[] = [];
  for (const served of modules.frontDoors ?? []) {
    const { routes, frontDoor } = served(routeDeps);
    app.route("/", routes);
    frontDoors.push(frontDoor);
  }
  // The console calls the API through the API's own request handler, as any client would.
  app.route("/console", consoleRoutes(routeDeps, { fetchApi: (request) => app.fetch(request) }));

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
    logRequestFailure(deps.logger, error, c.get("requestId"));
    return errorResponse(error, c);
  });
  return { app, frontDoors };
}

/** The observed headers, from Node's request when there is one (`observedHeadersOf`). */
function requestHeaders(c: Context<AppEnv>): ObservedHeaders {
  const incoming = nodeRequest(c);
  if (incoming !== undefined) return observedHeadersOf(incoming);
  return { requestId: c.req.header("x-request-id"), traceparent: c.req.header("traceparent") };
}
