import { createRoute, z } from "@hono/zod-openapi";
import { requireRole } from "../auth/principal";
import type { AppDeps } from "../deps";
import { createRouter, errorResponses } from "../router";
import {
  listSessionsQuery,
  refreshedSessionSchema,
  sessionParams,
  sessionSchema,
  startedSessionSchema,
  startSessionBody,
} from "./schemas";
import {
  getSession,
  listSessions,
  refreshSession,
  revokeSession,
  type SessionDeps,
  startSession,
} from "./service";

const json = <T extends z.ZodType>(schema: T) => ({ content: { "application/json": { schema } } });
const security = [{ bearer: [] }];
const tags = ["sandbox-sessions"];

/**
 * `/v1/sandbox-sessions` (SPEC §6.2): members start, refresh and revoke sessions; viewers list
 * and read them (never their tokens).
 */
export function sessionRoutes(deps: AppDeps) {
  const router = createRouter();
  // The request's `db` (bound by its deadline) joins these in each handler.
  const sessionDeps: Omit<SessionDeps, "db"> = {
    clock: deps.clock,
    registry: deps.registry,
    sessionSigner: deps.sessionSigner,
    settings: deps.settings,
  };

  router.openapi(
    createRoute({
      method: "post",
      path: "/v1/sandbox-sessions",
      tags,
      security,
      description:
        "Starts a session on a profile version (default: latest). The sandbox writes `caCertPem` to a file, points every `caEnvVars` variable at it, and sets `proxyEnv` and the plan's `env`.",
      request: { body: { ...json(startSessionBody), required: true } },
      responses: {
        201: {
          description: "The session, its token and the sandbox material",
          ...json(startedSessionSchema),
        },
        ...errorResponses,
        422: {
          description:
            "profile_not_found, profile_version_not_found, profile_has_no_versions, or a compile error code",
        },
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "member");
      return c.json(
        await startSession({ ...sessionDeps, db }, principal, c.req.valid("json")),
        201,
      );
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/sandbox-sessions",
      tags,
      security,
      request: { query: listSessionsQuery },
      responses: {
        200: {
          description: "Sessions, newest first",
          ...json(z.object({ items: z.array(sessionSchema), nextCursor: z.string().nullable() })),
        },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "viewer");
      return c.json(
        await listSessions(db, deps.clock, principal.organizationId, c.req.valid("query")),
        200,
      );
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/sandbox-sessions/{id}",
      tags,
      security,
      request: { params: sessionParams },
      responses: { 200: { description: "The session", ...json(sessionSchema) }, ...errorResponses },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "viewer");
      return c.json(
        await getSession(db, deps.clock, principal.organizationId, c.req.valid("param").id),
        200,
      );
    },
  );

  router.openapi(
    createRoute({
      method: "post",
      path: "/v1/sandbox-sessions/{id}/refresh",
      tags,
      security,
      request: { params: sessionParams },
      responses: {
        200: { description: "A new token", ...json(refreshedSessionSchema) },
        ...errorResponses,
        409: { description: "session_revoked or session_expired" },
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "member");
      return c.json(
        await refreshSession({ ...sessionDeps, db }, principal, c.req.valid("param").id),
        200,
      );
    },
  );

  router.openapi(
    createRoute({
      method: "delete",
      path: "/v1/sandbox-sessions/{id}",
      tags,
      security,
      description: "Revokes the session at once (idempotent); gateways drop it within a second.",
      request: { params: sessionParams },
      responses: { 204: { description: "Revoked" }, ...errorResponses },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "member");
      await revokeSession(db, deps.clock, principal, c.req.valid("param").id);
      return c.body(null, 204);
    },
  );

  return router;
}
