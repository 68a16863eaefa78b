import { createRoute, z } from "@hono/zod-openapi";
import { requireOperator, requireRole } from "../auth/principal";
import type { AppDeps } from "../deps";
import { createRouter, errorResponses } from "../router";
import {
  getDelivery,
  getEvent,
  listEvents,
  replayDeliveryById,
  replayEvent,
  type WebhookEventDeps,
} from "./events";
import {
  deliverySchema,
  eventReplaySchema,
  idParams,
  listEventsQuery,
  operatorListEventsQuery,
  operatorWebhookEventDetailSchema,
  operatorWebhookEventSchema,
  webhookEventDetailSchema,
  webhookEventSchema,
} from "./schemas";

const json = <T extends z.ZodType>(schema: T) => ({ content: { "application/json": { schema } } });
const security = [{ bearer: [] }];
const tags = ["webhook-events"];

const page = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), nextCursor: z.string().nullable() });

/**
 * `/v1/webhook-events` and `/v1/webhook-deliveries` (SPEC §8): viewers list and read the
 * organization's events with their deliveries and attempts; members replay. Operators list every
 * organization's events, and the `unassigned` ones, under `/v1/operator/webhook-events`.
 */
export function webhookEventRoutes(deps: AppDeps) {
  const router = createRouter();
  const eventDeps: Omit<WebhookEventDeps, "db"> = { clock: deps.clock, jobs: deps.jobs };

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/webhook-events",
      tags,
      security,
      description:
        "Filters: `targetKey`, `type` (exact, `prefix.*` or `*`), `status`, and `receivedAfter` (inclusive) / `receivedBefore` (exclusive).",
      request: { query: listEventsQuery },
      responses: {
        200: { description: "Events, newest first", ...json(page(webhookEventSchema)) },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "viewer");
      return c.json(
        await listEvents(db, { organizationId: principal.organizationId }, c.req.valid("query")),
        200,
      );
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/webhook-events/{id}",
      tags,
      security,
      request: { params: idParams },
      responses: {
        200: {
          description: "The event, its payload, and every delivery with its attempts",
          ...json(webhookEventDetailSchema),
        },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "viewer");
      return c.json(
        await getEvent(db, { organizationId: principal.organizationId }, c.req.valid("param").id),
        200,
      );
    },
  );

  router.openapi(
    createRoute({
      method: "post",
      path: "/v1/webhook-events/{id}/replay",
      tags,
      security,
      summary: "Deliver an event again to every subscription that wants it now",
      description:
        "Subscriptions without a delivery of the event get one; existing deliveries get a fresh attempt now, whatever their state. A delivery whose attempt is running is listed in `inFlight` and left alone.",
      request: { params: idParams },
      responses: {
        202: { description: "The deliveries queued", ...json(eventReplaySchema) },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "member");
      return c.json(
        await replayEvent({ ...eventDeps, db }, principal, c.req.valid("param").id),
        202,
      );
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/webhook-deliveries/{id}",
      tags,
      security,
      request: { params: idParams },
      responses: {
        200: { description: "The delivery and its attempts", ...json(deliverySchema) },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "viewer");
      return c.json(await getDelivery(db, principal.organizationId, c.req.valid("param").id), 200);
    },
  );

  router.openapi(
    createRoute({
      method: "post",
      path: "/v1/webhook-deliveries/{id}/replay",
      tags,
      security,
      summary: "A fresh attempt of one delivery, now",
      description:
        "A `dead`, `failed` or `delivered` delivery becomes `pending`; if the attempt fails, the retry schedule continues from the attempts made (a delivery past the last attempt of the schedule is `dead` again).",
      request: { params: idParams },
      responses: {
        202: { description: "The delivery, pending", ...json(deliverySchema) },
        ...errorResponses,
        409: {
          description:
            "`subscription_disabled` (enable the subscription first) or `delivery_in_progress`",
        },
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "member");
      return c.json(
        await replayDeliveryById({ ...eventDeps, db }, principal, c.req.valid("param").id),
        202,
      );
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/operator/webhook-events",
      tags: ["operator"],
      security,
      description:
        "Every organization's events and the `unassigned` ones (no connection could be resolved; `status=unassigned` lists only those). Same filters as `/v1/webhook-events`, plus `organizationId`.",
      request: { query: operatorListEventsQuery },
      responses: {
        200: { description: "Events, newest first", ...json(page(operatorWebhookEventSchema)) },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      requireOperator(c.get("principal"));
      return c.json(await listEvents(db, { operator: true }, c.req.valid("query")), 200);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/operator/webhook-events/{id}",
      tags: ["operator"],
      security,
      request: { params: idParams },
      responses: {
        200: {
          description: "Any event, with its payload and deliveries",
          ...json(operatorWebhookEventDetailSchema),
        },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      requireOperator(c.get("principal"));
      return c.json(await getEvent(db, { operator: true }, c.req.valid("param").id), 200);
    },
  );

  return router;
}
