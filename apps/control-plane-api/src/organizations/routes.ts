import { createRoute, z } from "@hono/zod-openapi";
import { requireOperator, requireRole } from "../auth/principal";
import type { AppDeps } from "../deps";
import { createRouter, errorResponses } from "../router";
import {
  apiTokenSchema,
  createApiTokenBody,
  createdApiTokenSchema,
  createOrganizationBody,
  idParams,
  organizationSchema,
} from "./schemas";
import {
  createApiToken,
  createOrganization,
  getOrganization,
  listApiTokens,
  listOrganizations,
  revokeApiToken,
} from "./service";

const json = <T extends z.ZodType>(schema: T) => ({ content: { "application/json": { schema } } });
const security = [{ bearer: [] }];

export function organizationRoutes(deps: AppDeps) {
  const router = createRouter();

  router.openapi(
    createRoute({
      method: "post",
      path: "/v1/operator/organizations",
      tags: ["operator"],
      security,
      request: { body: { ...json(createOrganizationBody), required: true } },
      responses: {
        201: {
          description: "Organization and its first admin token",
          ...json(
            z.object({ organization: organizationSchema, adminToken: createdApiTokenSchema }),
          ),
        },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const operator = requireOperator(c.get("principal"));
      const created = await createOrganization(db, deps.clock, operator.actor, c.req.valid("json"));
      return c.json(created, 201);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/operator/organizations",
      tags: ["operator"],
      security,
      responses: {
        200: {
          description: "All organizations",
          ...json(z.object({ items: z.array(organizationSchema) })),
        },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      requireOperator(c.get("principal"));
      return c.json({ items: await listOrganizations(db) }, 200);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/organization",
      tags: ["organization"],
      security,
      responses: {
        200: { description: "The caller's organization", ...json(organizationSchema) },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "viewer");
      return c.json(await getOrganization(db, principal.organizationId), 200);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/api-tokens",
      tags: ["organization"],
      security,
      responses: {
        200: {
          description: "API tokens (never their values)",
          ...json(z.object({ items: z.array(apiTokenSchema) })),
        },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "admin");
      return c.json({ items: await listApiTokens(db, principal.organizationId) }, 200);
    },
  );

  router.openapi(
    createRoute({
      method: "post",
      path: "/v1/api-tokens",
      tags: ["organization"],
      security,
      request: { body: { ...json(createApiTokenBody), required: true } },
      responses: {
        201: { description: "The token, shown once", ...json(createdApiTokenSchema) },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "admin");
      return c.json(await createApiToken(db, deps.clock, principal, c.req.valid("json")), 201);
    },
  );

  router.openapi(
    createRoute({
      method: "delete",
      path: "/v1/api-tokens/{id}",
      tags: ["organization"],
      security,
      request: { params: idParams },
      responses: { 204: { description: "Revoked" }, ...errorResponses },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "admin");
      await revokeApiToken(db, deps.clock, principal, c.req.valid("param").id);
      return c.body(null, 204);
    },
  );

  return router;
}
