import {
  decodeUtf8Body,
  isJsonObject,
  type JsonValue,
  verifyStandardWebhook,
  type WebhookBehaviour,
  type WebhookConnectionCandidate,
  type WebhookEvent,
  type WebhookParseResult,
  type WebhookRequest,
  type WebhookVerifyResult,
} from "@keyway/integrations-core";
import type { HttpApiTargetConfig, HttpApiTargetSecrets } from "./target-config-schema";

/**
 * Inbound webhooks signed by the Standard Webhooks scheme (https://www.standardwebhooks.com):
 * `webhook-id` (the dedupe key), `webhook-timestamp` (seconds), `webhook-signature`
 * (`v1,<base64>` entries) over `id.timestamp.body` with the target's `whsec_` secret, and a
 * five-minute replay window. The payload is JSON, conventionally `{ type, timestamp, data }`.
 *
 * A target refuses every delivery (`missing_secret`) unless its config turns webhooks on and its
 * secrets hold a `webhookSecret`.
 */

/** Event type when the payload names none; otherwise `http-api.<payload type>`. */
export const HTTP_API_GENERIC_EVENT = "http-api.event";

const MAX_EVENT_TYPE_LENGTH = 200;

export function parseHttpApiWebhook(request: WebhookRequest): WebhookParseResult {
  const deliveryId = request.headers["webhook-id"];
  if (deliveryId === undefined || deliveryId === "") {
    return { kind: "invalid", message: "missing webhook-id header" };
  }
  let payload: JsonValue;
  try {
    payload = JSON.parse(decodeUtf8Body(request.rawBody));
  } catch {
    return { kind: "invalid", message: "body is not UTF-8 JSON" };
  }

  const event: WebhookEvent = { deliveryId, eventType: HTTP_API_GENERIC_EVENT, payload };
  if (isJsonObject(payload)) {
    const type = payload.type;
    if (typeof type === "string" && type !== "" && type.length <= MAX_EVENT_TYPE_LENGTH) {
      event.eventType = `http-api.${type}`;
    }
    if (typeof payload.connection_id === "string" && payload.connection_id !== "") {
      event.externalSubjectId = payload.connection_id;
    }
    if (typeof payload.timestamp === "string" && !Number.isNaN(Date.parse(payload.timestamp))) {
      event.occurredAt = payload.timestamp;
    }
  }
  return { kind: "event", event };
}

export function verifyHttpApiWebhook(
  request: WebhookRequest,
  ctx: { targetConfig: HttpApiTargetConfig; targetSecrets: HttpApiTargetSecrets; now: Date },
): WebhookVerifyResult {
  // A target that has not turned inbound webhooks on accepts no delivery, whatever secret it holds.
  if (ctx.targetConfig.webhook === undefined) return { ok: false, reason: "missing_secret" };
  const secret = ctx.targetSecrets.webhookSecret;
  if (secret === undefined || secret === "") return { ok: false, reason: "missing_secret" };
  const result = verifyStandardWebhook({
    secret,
    headers: request.headers,
    body: request.rawBody,
    now: ctx.now,
  });
  if (result.ok) return { ok: true };
  switch (result.reason) {
    case "missing_header":
      return { ok: false, reason: "missing_signature" };
    case "stale_timestamp":
      return { ok: false, reason: "stale_timestamp" };
    case "invalid_secret":
      // The secret schema refuses such values, so this is a stored secret gone bad.
      return { ok: false, reason: "missing_secret" };
    case "invalid_timestamp":
    case "bad_signature":
      return { ok: false, reason: "bad_signature" };
  }
}

/**
 * The only candidate when there is one; otherwise the connection the payload names in
 * `connection_id`, by Keyway connection id or by external subject id. Nothing else is guessed.
 */
export function resolveHttpApiWebhookConnection(
  event: WebhookEvent,
  candidates: readonly WebhookConnectionCandidate[],
): string | undefined {
  if (candidates.length === 1) return candidates[0]?.id;
  const named = event.externalSubjectId;
  if (named === undefined) return undefined;
  const byId = candidates.find((candidate) => candidate.id === named);
  if (byId !== undefined) return byId.id;
  const bySubject = candidates.filter((candidate) => candidate.externalSubjectId === named);
  return bySubject.length === 1 ? bySubject[0]?.id : undefined;
}

export const httpApiWebhook: WebhookBehaviour<HttpApiTargetSecrets, HttpApiTargetConfig> = {
  eventTypes: [HTTP_API_GENERIC_EVENT],
  parse: parseHttpApiWebhook,
  verify: verifyHttpApiWebhook,
  resolveConnection: resolveHttpApiWebhookConnection,
};
