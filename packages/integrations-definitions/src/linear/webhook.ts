import {
  isWithinTolerance,
  type JsonObject,
  readJsonObjectBody,
  verifyHmacSha256Hex,
  type WebhookBehaviour,
  type WebhookParseResult,
} from "@keyway/integrations-core";
import type { LinearTargetSecrets } from "./target-secret-schema";

/**
 * Linear webhooks (linear.app/developers/webhooks): `Linear-Signature` is the hex HMAC-SHA256 of
 * the raw body under the webhook's signing secret, `Linear-Delivery` identifies the delivery, and
 * the body's `webhookTimestamp` (ms) must be within a minute of now — the tolerance Linear's own
 * SDK applies (linear/linear `packages/sdk/src/webhooks/client.ts`).
 */
export const LINEAR_SIGNATURE_HEADER = "linear-signature";
export const LINEAR_DELIVERY_HEADER = "linear-delivery";
export const LINEAR_TIMESTAMP_TOLERANCE_MS = 60_000;

const ENTITY_TYPES = [
  "Attachment",
  "AuditEntry",
  "Comment",
  "Customer",
  "CustomerNeed",
  "Cycle",
  "Document",
  "Initiative",
  "InitiativeUpdate",
  "Issue",
  "IssueLabel",
  "Project",
  "ProjectUpdate",
  "Reaction",
  "User",
] as const;

/** Event types as `linear.<type lower-cased>.<action>`; `parse` also accepts types not listed. */
export const LINEAR_EVENT_TYPES: readonly string[] = [
  ...ENTITY_TYPES.flatMap((type) =>
    ["create", "update", "remove"].map((action) => linearEventType(type, action)),
  ),
  linearEventType("IssueSLA", "set"),
  linearEventType("IssueSLA", "highRisk"),
  linearEventType("IssueSLA", "breached"),
  linearEventType("OAuthApp", "revoked"),
  linearEventType("AgentSessionEvent", "created"),
  linearEventType("AgentSessionEvent", "prompted"),
];

export function linearEventType(type: string, action: string): string {
  return `linear.${type.toLowerCase()}.${action}`;
}

export const linearWebhook: WebhookBehaviour<LinearTargetSecrets> = {
  eventTypes: LINEAR_EVENT_TYPES,

  parse(request) {
    const body = readJsonObjectBody(request.rawBody);
    if (!body) return invalid("body is not a JSON object");
    const { type, action } = body;
    if (typeof type !== "string" || type === "" || typeof action !== "string" || action === "") {
      return invalid("body has no type and action");
    }
    // The header is the documented dedupe key; `webhookId` in the body is the same value.
    const deliveryId = request.headers[LINEAR_DELIVERY_HEADER] || stringField(body, "webhookId");
    if (!deliveryId) return invalid(`missing ${LINEAR_DELIVERY_HEADER} header`);

    const organizationId = stringField(body, "organizationId");
    const occurredAt = occurredAtOf(body);
    return {
      kind: "event",
      event: {
        deliveryId,
        eventType: linearEventType(type, action),
        ...(organizationId ? { externalSubjectId: organizationId } : {}),
        ...(occurredAt ? { occurredAt } : {}),
        payload: body,
      },
    };
  },

  verify(request, { targetSecrets, now }) {
    const secret = targetSecrets.webhookSecret;
    if (!secret) return { ok: false, reason: "missing_secret" };
    const signature = request.headers[LINEAR_SIGNATURE_HEADER];
    if (!signature) return { ok: false, reason: "missing_signature" };
    if (!verifyHmacSha256Hex({ secret, payload: request.rawBody, signatureHex: signature })) {
      return { ok: false, reason: "bad_signature" };
    }
    // The timestamp sits inside the signed body, so it is read only once the body is authentic.
    // A body without one cannot show it is fresh and is refused like a stale one.
    const timestamp = readJsonObjectBody(request.rawBody)?.webhookTimestamp;
    if (
      typeof timestamp !== "number" ||
      !isWithinTolerance(timestamp, now, LINEAR_TIMESTAMP_TOLERANCE_MS)
    ) {
      return { ok: false, reason: "stale_timestamp" };
    }
    return { ok: true };
  },

  resolveConnection(event, candidates) {
    if (event.externalSubjectId === undefined) return undefined;
    return candidates.find((c) => c.externalSubjectId === event.externalSubjectId)?.id;
  },
};

function invalid(message: string): WebhookParseResult {
  return { kind: "invalid", message };
}

function stringField(body: JsonObject, key: string): string | undefined {
  const value = body[key];
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** `createdAt` is when the action happened; `webhookTimestamp` (ms) when it was sent. */
function occurredAtOf(body: JsonObject): string | undefined {
  const createdAt = stringField(body, "createdAt");
  if (createdAt && !Number.isNaN(Date.parse(createdAt))) return new Date(createdAt).toISOString();
  const sent = body.webhookTimestamp;
  if (typeof sent !== "number") return undefined;
  const date = new Date(sent);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}
