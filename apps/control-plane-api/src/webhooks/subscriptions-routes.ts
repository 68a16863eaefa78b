import { createRoute, z } from "@hono/zod-openapi";
import { requireRole } from "../auth/principal";
import type { AppDeps } from "../deps";
import { createRouter, errorResponses } from "../router";
import {
  createSubscriptionBody,
  idParams,
  subscriptionSchema,
  subscriptionWithSecretSchema,
  updateSubscriptionBody,
} from "./schemas";
import {
  createSubscription,
  deleteSubscription,
  getSubscription,
  listSubscriptions,
  rotateSubscriptionSecret,
  type SubscriptionDeps,
  updateSubscription,
} from "./subscriptions";

const json = <T extends z.ZodType>(schema: T) => ({ content: { "application/json": { schema } } });
const security = [{ bearer: [] }];
const tags = ["webhook-subscriptions"];
const BASE = "/v1/webhook-subscriptions";

const urlErrors = {
  422: {
    description:
      "`subscriber_url_private` (the host resolves to a loopback, link-local or private address) or `subscriber_url_unresolvable`",
  },
} as const;

/**
 * `/v1/webhook-subscriptions` (SPEC §8): viewers read; members create, change and rotate secrets
 * (the new secret is in the answer, once); admins delete.
 */
export function webhookSubscriptionRoutes(deps: AppDeps) {
  const router = createRouter();
  // The request's `db` (bound by its deadline) joins these in each handler.
  const subscriptionDeps: Omit<SubscriptionDeps, "db"> = {
    keyRing: deps.keyRing,
    clock: deps.clock,
    settings: deps.settings,
  };

  router.openapi(
    createRoute({
      method: "post",
      path: BASE,
      tags,
      security,
      summary: "Subscribe an endpoint to event types",
      description:
        "Deliveries are signed with the Standard Webhooks scheme using the returned `secret`, which is shown only here.",
      request: { body: { ...json(createSubscriptionBody), required: true } },
      responses: {
        201: {
          description: "The subscription and its signing secret",
          ...json(subscriptionWithSecretSchema),
        },
        ...errorResponses,
        ...urlErrors,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "member");
      return c.json(
        await createSubscription({ ...subscriptionDeps, db }, principal, c.req.valid("json")),
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
      responses: {
        200: {
          description: "The organization's subscriptions, oldest first (never their secrets)",
          ...json(z.object({ items: z.array(subscriptionSchema) })),
        },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "viewer");
      return c.json(
        { items: await listSubscriptions({ ...subscriptionDeps, db }, principal.organizationId) },
        200,
      );
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: `${BASE}/{id}`,
      tags,
      security,
      request: { params: idParams },
      responses: {
        200: { description: "The subscription", ...json(subscriptionSchema) },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "viewer");
      return c.json(
        await getSubscription(
          { ...subscriptionDeps, db },
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
      description:
        "Changes the URL (checked again), description, event types or `enabled`. Enabling a subscription the worker disabled (its endpoint answered 410) clears `disabledReason`.",
      request: {
        params: idParams,
        body: { ...json(updateSubscriptionBody), required: true },
      },
      responses: {
        200: { description: "The updated subscription", ...json(subscriptionSchema) },
        ...errorResponses,
        ...urlErrors,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "member");
      const { id } = c.req.valid("param");
      return c.json(
        await updateSubscription({ ...subscriptionDeps, db }, principal, id, c.req.valid("json")),
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
      summary: "Delete a subscription, its deliveries and their attempt records",
      request: { params: idParams },
      responses: { 204: { description: "Deleted" }, ...errorResponses },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "admin");
      await deleteSubscription({ ...subscriptionDeps, db }, principal, c.req.valid("param").id);
      return c.body(null, 204);
    },
  );

  router.openapi(
    createRoute({
      method: "post",
      path: `${BASE}/{id}/rotate-secret`,
      tags,
      security,
      summary: "Rotate the signing secret",
      description:
        "Returns the new secret, once. Until `previousSecretExpiresAt` (`webhooks.secret_rotation_overlap_hours`) deliveries carry two signatures, one per secret, so a subscriber verifying with either accepts them.",
      request: { params: idParams },
      responses: {
        200: {
          description: "The subscription and its new signing secret",
          ...json(subscriptionWithSecretSchema),
        },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "member");
      return c.json(
        await rotateSubscriptionSecret(
          { ...subscriptionDeps, db },
          principal,
          c.req.valid("param").id,
        ),
        200,
      );
    },
  );

  return router;
}
