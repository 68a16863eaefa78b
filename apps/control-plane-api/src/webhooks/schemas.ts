import { z } from "@hono/zod-openapi";
import { httpUrlSettingSchema, isEventTypePattern } from "@keyway/integrations-core";
import { descriptionSchema } from "../text-fields";

// ----- subscriptions ----------------------------------------------------------------------------

/**
 * Where deliveries go: http(s), no credentials in the URL (it is shown in every listing) and no
 * fragment (never sent); a query is kept. The address it resolves to is checked by the service.
 */
const subscriberUrlSchema = httpUrlSettingSchema({ query: true }).max(2000);

const eventTypePatternSchema = z
  .string()
  .refine(isEventTypePattern, {
    message:
      "expected an event type (`github.push`), a prefix pattern (`github.pull_request.*`) or `*`",
  })
  .openapi({ example: "github.pull_request.*" });

const eventTypesSchema = z
  .array(eventTypePatternSchema)
  .min(1)
  .max(50)
  .describe("the event types delivered: exact types, `prefix.*` patterns, or `*` for all");

/** A subscription as the API shows it: never its signing secrets. */
export const subscriptionSchema = z
  .object({
    id: z.string(),
    url: z.string(),
    description: z.string().nullable(),
    eventTypes: z.array(z.string()),
    enabled: z.boolean(),
    disabledReason: z
      .string()
      .nullable()
      .describe("why deliveries stopped: `gone` (the endpoint answered 410), `disabled_by_user`"),
    previousSecretExpiresAt: z
      .string()
      .nullable()
      .describe(
        "while a rotation overlap lasts, the previous secret signs too, until this instant",
      ),
    createdBy: z.string(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("WebhookSubscription");

export type SubscriptionResponse = z.infer<typeof subscriptionSchema>;

export const subscriptionWithSecretSchema = subscriptionSchema
  .extend({
    secret: z
      .string()
      .describe(
        "the signing secret (`whsec_…`): shown once, here; verify deliveries with a Standard Webhooks library",
      ),
  })
  .openapi("WebhookSubscriptionWithSecret");

export const createSubscriptionBody = z
  .strictObject({
    url: subscriberUrlSchema,
    description: descriptionSchema.optional(),
    eventTypes: eventTypesSchema,
    enabled: z.boolean().optional(),
  })
  .openapi("CreateWebhookSubscription");

export type CreateSubscriptionInput = z.infer<typeof createSubscriptionBody>;

export const updateSubscriptionBody = z
  .strictObject({
    url: subscriberUrlSchema.optional(),
    description: descriptionSchema.nullable().optional(),
    eventTypes: eventTypesSchema.optional(),
    enabled: z.boolean().optional(),
  })
  .refine((body) => Object.values(body).some((value) => value !== undefined), {
    message: "give at least one of url, description, eventTypes, enabled",
  })
  .openapi("UpdateWebhookSubscription");

export type UpdateSubscriptionInput = z.infer<typeof updateSubscriptionBody>;

export const idParams = z.object({
  id: z.string().openapi({ param: { name: "id", in: "path" } }),
});

// ----- events, deliveries, attempts -------------------------------------------------------------

export const webhookEventStatusSchema = z.enum([
  "received",
  "processed",
  "ignored",
  "failed",
  "unassigned",
]);

export const deliveryStatusSchema = z.enum(["pending", "delivered", "failed", "dead"]);

export const deliveryAttemptSchema = z
  .object({
    attempt: z.number().int(),
    startedAt: z.string(),
    durationMs: z.number().int(),
    responseStatus: z.number().int().nullable(),
    responseBody: z.string().nullable().describe("the first 1 KiB of the response body, as text"),
    error: z.string().nullable(),
  })
  .openapi("WebhookDeliveryAttempt");

export const deliverySchema = z
  .object({
    id: z.string(),
    eventId: z.string(),
    subscriptionId: z.string(),
    status: deliveryStatusSchema,
    attempts: z.number().int().describe("attempts made so far"),
    nextAttemptAt: z.string().nullable(),
    lastError: z.string().nullable(),
    responseStatus: z.number().int().nullable(),
    createdAt: z.string(),
    deliveredAt: z.string().nullable(),
    attemptHistory: z.array(deliveryAttemptSchema).describe("every recorded attempt, oldest first"),
  })
  .openapi("WebhookDelivery");

export type DeliveryResponse = z.infer<typeof deliverySchema>;

export const webhookEventSchema = z
  .object({
    id: z.string(),
    targetKey: z.string(),
    connectionId: z.string().nullable(),
    eventType: z.string(),
    externalDeliveryId: z.string().describe("the provider's delivery id (the dedupe key)"),
    externalSubjectId: z.string().nullable(),
    status: webhookEventStatusSchema,
    attempts: z.number().int().describe("processing runs"),
    lastError: z.string().nullable(),
    receivedAt: z.string(),
    processedAt: z.string().nullable(),
  })
  .openapi("WebhookEvent");

export type WebhookEventResponse = z.infer<typeof webhookEventSchema>;

export const webhookEventDetailSchema = webhookEventSchema
  .extend({
    headers: z.record(z.string(), z.string()).describe("the stored allow-list of request headers"),
    payload: z.unknown().describe("the normalized event's payload"),
    deliveries: z.array(deliverySchema),
  })
  .openapi("WebhookEventDetail");

export const operatorWebhookEventSchema = webhookEventSchema
  .extend({ organizationId: z.string().nullable().describe("null: unassigned") })
  .openapi("OperatorWebhookEvent");

export const operatorWebhookEventDetailSchema = webhookEventDetailSchema
  .extend({ organizationId: z.string().nullable() })
  .openapi("OperatorWebhookEventDetail");

export const eventReplaySchema = z
  .object({
    eventId: z.string(),
    deliveries: z
      .array(deliverySchema)
      .describe("the deliveries queued: new ones, and existing ones given a fresh attempt"),
    inFlight: z
      .array(z.string())
      .describe("deliveries left alone because an attempt of theirs was running"),
  })
  .openapi("WebhookEventReplay");

const instant = z.iso.datetime({ offset: true });

const eventFilters = {
  targetKey: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .openapi({ param: { name: "targetKey", in: "query" } }),
  type: eventTypePatternSchema
    .optional()
    .openapi({ param: { name: "type", in: "query" }, example: "github.pull_request.*" }),
  status: webhookEventStatusSchema.optional().openapi({ param: { name: "status", in: "query" } }),
  receivedAfter: instant
    .optional()
    .openapi({ param: { name: "receivedAfter", in: "query" }, example: "2026-01-01T00:00:00Z" }),
  receivedBefore: instant
    .optional()
    .openapi({ param: { name: "receivedBefore", in: "query" }, example: "2026-02-01T00:00:00Z" }),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(500)
    .default(50)
    .openapi({ param: { name: "limit", in: "query" }, type: "integer" }),
  /** Cursor: the `nextCursor` of the previous page (events come newest first). */
  before: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .openapi({ param: { name: "before", in: "query" } }),
};

export const listEventsQuery = z.object(eventFilters);

export const operatorListEventsQuery = z.object({
  ...eventFilters,
  organizationId: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .openapi({ param: { name: "organizationId", in: "query" } }),
});

export type EventFilters = z.infer<typeof operatorListEventsQuery>;
