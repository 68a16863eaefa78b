import { createRoute, z } from "@hono/zod-openapi";
import { requireOperator, requireRole } from "../auth/principal";
import type { AppDeps } from "../deps";
import { createRouter, errorResponses } from "../router";
import {
  createTargetBody,
  operatorTargetDetailSchema,
  operatorTargetSchema,
  publicTargetSchema,
  replaceTargetSecretsBody,
  targetKeyParams,
  targetSecretsResultSchema,
  updateTargetBody,
} from "./schemas";
import {
  createDefinitionForms,
  createTarget,
  createTargetForms,
  getOperatorTarget,
  getPublicTarget,
  listOperatorTargets,
  listPublicTargets,
  replaceTargetSecrets,
  setTargetEnabled,
  updateTarget,
} from "./service";

const json = <T extends z.ZodType>(schema: T) => ({ content: { "application/json": { schema } } });
const security = [{ bearer: [] }];
const operatorErrors = {
  ...errorResponses,
  409: { description: "A target with this key already exists" },
  422: { description: "Unknown variant, or a config that does not allow enabling (with a code)" },
} as const;

/**
 * Operator routes under `/v1/operator/targets` (operator token only) and the organization-facing
 * catalogue under `/v1/integration/targets` (any organization role). Targets are addressed by
 * `targetKey`.
 */
export function targetRoutes(deps: AppDeps) {
  const router = createRouter();
  const formsOf = createDefinitionForms();
  const targetFormsOf = createTargetForms();

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/operator/targets",
      tags: ["operator"],
      security,
      responses: {
        200: {
          description: "Every target, enabled or not (secret field names, never values)",
          ...json(z.object({ items: z.array(operatorTargetSchema) })),
        },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      requireOperator(c.get("principal"));
      return c.json({ items: await listOperatorTargets(db, deps) }, 200);
    },
  );

  router.openapi(
    createRoute({
      method: "post",
      path: "/v1/operator/targets",
      tags: ["operator"],
      security,
      request: { body: { ...json(createTargetBody), required: true } },
      responses: {
        201: { description: "The new target", ...json(operatorTargetSchema) },
        ...operatorErrors,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const operator = requireOperator(c.get("principal"));
      return c.json(await createTarget(db, deps, operator.actor, c.req.valid("json")), 201);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/operator/targets/{targetKey}",
      tags: ["operator"],
      security,
      request: { params: targetKeyParams },
      responses: {
        200: {
          description: "The target, with the forms of its config and secrets",
          ...json(operatorTargetDetailSchema),
        },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      requireOperator(c.get("principal"));
      const target = await getOperatorTarget(db, deps, c.req.valid("param").targetKey);
      const definition = deps.registry.get(target.variantId);
      return c.json({ ...target, forms: definition ? targetFormsOf(definition) : null }, 200);
    },
  );

  router.openapi(
    createRoute({
      method: "patch",
      path: "/v1/operator/targets/{targetKey}",
      tags: ["operator"],
      security,
      request: {
        params: targetKeyParams,
        body: { ...json(updateTargetBody), required: true },
      },
      responses: {
        200: { description: "The updated target", ...json(operatorTargetSchema) },
        ...operatorErrors,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const operator = requireOperator(c.get("principal"));
      const { targetKey } = c.req.valid("param");
      return c.json(
        await updateTarget(db, deps, operator.actor, targetKey, c.req.valid("json")),
        200,
      );
    },
  );

  for (const action of ["enable", "disable"] as const) {
    router.openapi(
      createRoute({
        method: "post",
        path: `/v1/operator/targets/{targetKey}/${action}`,
        tags: ["operator"],
        security,
        request: { params: targetKeyParams },
        responses: {
          200: { description: `The ${action}d target`, ...json(operatorTargetSchema) },
          ...operatorErrors,
        },
      }),
      async (c) => {
        const db = c.get("db");
        const operator = requireOperator(c.get("principal"));
        const { targetKey } = c.req.valid("param");
        return c.json(
          await setTargetEnabled(db, deps, operator.actor, targetKey, action === "enable"),
          200,
        );
      },
    );
  }

  router.openapi(
    createRoute({
      method: "put",
      path: "/v1/operator/targets/{targetKey}/secrets",
      tags: ["operator"],
      security,
      request: {
        params: targetKeyParams,
        body: { ...json(replaceTargetSecretsBody), required: true },
      },
      responses: {
        200: {
          description: "Names of the secret fields now set (write-only: values never returned)",
          ...json(targetSecretsResultSchema),
        },
        ...operatorErrors,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const operator = requireOperator(c.get("principal"));
      const { targetKey } = c.req.valid("param");
      const { secrets } = c.req.valid("json");
      return c.json(await replaceTargetSecrets(db, deps, operator.actor, targetKey, secrets), 200);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/integration/targets",
      tags: ["targets"],
      security,
      responses: {
        200: {
          description: "Enabled targets with connection methods and forms",
          ...json(z.object({ items: z.array(publicTargetSchema) })),
        },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      requireRole(c.get("principal"), "viewer");
      return c.json({ items: await listPublicTargets(db, deps.registry, formsOf) }, 200);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/integration/targets/{targetKey}",
      tags: ["targets"],
      security,
      request: { params: targetKeyParams },
      responses: {
        200: { description: "An enabled target", ...json(publicTargetSchema) },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      requireRole(c.get("principal"), "viewer");
      const { targetKey } = c.req.valid("param");
      return c.json(await getPublicTarget(db, deps.registry, formsOf, targetKey), 200);
    },
  );

  return router;
}
