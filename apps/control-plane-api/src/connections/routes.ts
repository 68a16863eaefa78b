import { createRoute, z } from "@hono/zod-openapi";
import { requireRole } from "../auth/principal";
import { createOAuth2Tokens } from "../credentials/oauth2-tokens";
import type { AppDeps } from "../deps";
import { requestDeps } from "../request-deadline";
import { createRouter, errorResponses } from "../router";
import {
  connectionIdParams,
  connectionSchema,
  createConnectionBody,
  credentialTestResultSchema,
  listConnectionsQuery,
  resourceListSchema,
  resourceParams,
  rotateSecretBody,
  updateConnectionBody,
} from "./schemas";
import {
  createConnection,
  getConnection,
  listConnectionResources,
  listConnections,
  revokeConnection,
  rotateConnectionSecret,
  testConnection,
  updateConnection,
} from "./service";

const json = <T extends z.ZodType>(schema: T) => ({ content: { "application/json": { schema } } });
const security = [{ bearer: [] }];
const tags = ["connections"];
const BASE = "/v1/integration/connections";

const referenceErrors = {
  409: { description: "The connection is revoked (`connection_revoked`)" },
  422: {
    description:
      "A reference is unusable: `target_not_found`, `target_disabled`, `method_not_found`, " +
      "`method_not_supported_here`, `resources_not_supported`, ...",
  },
} as const;

/**
 * `/v1/integration/connections` (SPEC §6.2). Viewers read; members create, update, rotate, test
 * and list resources (the last two spend the credential at the provider); admins revoke.
 */
export function connectionRoutes(deps: AppDeps) {
  const router = createRouter();
  const tokens = createOAuth2Tokens({
    database: deps.database,
    keyRing: deps.keyRing,
    clock: deps.clock,
    fetch: deps.fetch,
    logger: deps.logger,
    tokenRequestTimeoutMs: deps.settings.tokenRequestTimeoutMs,
  });

  router.openapi(
    createRoute({
      method: "post",
      path: BASE,
      tags,
      security,
      summary: "Create a connection from secret inputs (API key, OAuth2 client credentials)",
      request: { body: { ...json(createConnectionBody), required: true } },
      responses: {
        201: {
          description: "The connection (secrets are never returned)",
          ...json(connectionSchema),
        },
        ...errorResponses,
        ...referenceErrors,
      },
    }),
    async (c) => {
      const principal = requireRole(c.get("principal"), "member");
      return c.json(
        await createConnection(requestDeps(deps, c), principal, c.req.valid("json")),
        201,
      );
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: BASE,
      tags,
      security,
      request: { query: listConnectionsQuery },
      responses: {
        200: {
          description: "The organization's connections, oldest first",
          ...json(z.object({ items: z.array(connectionSchema) })),
        },
        ...errorResponses,
      },
    }),
    async (c) => {
      const principal = requireRole(c.get("principal"), "viewer");
      const items = await listConnections(
        requestDeps(deps, c),
        principal.organizationId,
        c.req.valid("query"),
      );
      return c.json({ items }, 200);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: `${BASE}/{id}`,
      tags,
      security,
      request: { params: connectionIdParams },
      responses: {
        200: { description: "The connection", ...json(connectionSchema) },
        ...errorResponses,
      },
    }),
    async (c) => {
      const principal = requireRole(c.get("principal"), "viewer");
      return c.json(
        await getConnection(
          requestDeps(deps, c),
          principal.organizationId,
          c.req.valid("param").id,
        ),
        200,
      );
    },
  );

  router.openapi(
    createRoute({
      method: "patch",
      path: `${BASE}/{id}`,
      tags,
      security,
      request: {
        params: connectionIdParams,
        body: { ...json(updateConnectionBody), required: true },
      },
      responses: {
        200: { description: "The updated connection", ...json(connectionSchema) },
        ...errorResponses,
        ...referenceErrors,
      },
    }),
    async (c) => {
      const principal = requireRole(c.get("principal"), "member");
      const { id } = c.req.valid("param");
      return c.json(
        await updateConnection(requestDeps(deps, c), principal, id, c.req.valid("json")),
        200,
      );
    },
  );

  router.openapi(
    createRoute({
      method: "delete",
      path: `${BASE}/{id}`,
      tags,
      security,
      summary: "Revoke a connection (the record stays, with status revoked)",
      request: { params: connectionIdParams },
      responses: { 204: { description: "Revoked" }, ...errorResponses },
    }),
    async (c) => {
      const principal = requireRole(c.get("principal"), "admin");
      await revokeConnection(requestDeps(deps, c), principal, c.req.valid("param").id);
      return c.body(null, 204);
    },
  );

  router.openapi(
    createRoute({
      method: "post",
      path: `${BASE}/{id}/secret`,
      tags,
      security,
      summary: "Rotate the connection's secret (new credential version)",
      request: { params: connectionIdParams, body: { ...json(rotateSecretBody), required: true } },
      responses: {
        200: {
          description: "The connection with its new credential version",
          ...json(connectionSchema),
        },
        ...errorResponses,
        ...referenceErrors,
      },
    }),
    async (c) => {
      const principal = requireRole(c.get("principal"), "member");
      const { id } = c.req.valid("param");
      const { secrets } = c.req.valid("json");
      return c.json(
        await rotateConnectionSecret(requestDeps(deps, c), principal, id, secrets),
        200,
      );
    },
  );

  router.openapi(
    createRoute({
      method: "post",
      path: `${BASE}/{id}/test`,
      tags,
      security,
      summary: "Check the credential against the provider",
      request: { params: connectionIdParams },
      responses: {
        200: {
          description: "The outcome; a failed test changes nothing",
          ...json(credentialTestResultSchema),
        },
        ...errorResponses,
        ...referenceErrors,
      },
    }),
    async (c) => {
      const principal = requireRole(c.get("principal"), "member");
      return c.json(
        await testConnection(requestDeps(deps, c), principal, c.req.valid("param").id, tokens),
        200,
      );
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: `${BASE}/{id}/resources/{kind}`,
      tags,
      security,
      summary: "List provider resources (e.g. repositories) for binding pickers",
      request: { params: resourceParams },
      responses: {
        200: { description: "Resources the connection reaches", ...json(resourceListSchema) },
        ...errorResponses,
        ...referenceErrors,
        502: { description: "The provider refused or failed (`provider_request_failed`)" },
      },
    }),
    async (c) => {
      const principal = requireRole(c.get("principal"), "member");
      const { id, kind } = c.req.valid("param");
      return c.json(await listConnectionResources(requestDeps(deps, c), principal, id, kind), 200);
    },
  );

  return router;
}
