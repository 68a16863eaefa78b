import {
  isJsonObject,
  isWithinTolerance,
  type JsonObject,
  readJsonObjectBody,
  verifyHmacSha256Hex,
  type WebhookBehaviour,
  type WebhookParseResult,
  type WebhookRequest,
} from "@keyway/integrations-core";
import type { SlackTargetSecrets } from "./target-secret-schema";

/**
 * Slack Events API requests (docs.slack.dev/authentication/verifying-requests-from-slack):
 * `X-Slack-Signature` is `v0=` + hex HMAC-SHA256 of `v0:{X-Slack-Request-Timestamp}:{raw body}`
 * under the app's signing secret; requests older than five minutes are to be refused.
 */
export const SLACK_SIGNATURE_HEADER = "x-slack-signature";
export const SLACK_TIMESTAMP_HEADER = "x-slack-request-timestamp";
export const SLACK_RETRY_NUM_HEADER = "x-slack-retry-num";
export const SLACK_TIMESTAMP_TOLERANCE_MS = 5 * 60_000;

/** A selection of Events API types as `slack.<event.type>`; `parse` accepts any type. */
export const SLACK_EVENT_TYPES: readonly string[] = [
  "app_home_opened",
  "app_mention",
  "app_uninstalled",
  "channel_archive",
  "channel_created",
  "channel_deleted",
  "channel_rename",
  "channel_unarchive",
  "member_joined_channel",
  "member_left_channel",
  "message",
  "pin_added",
  "pin_removed",
  "reaction_added",
  "reaction_removed",
  "team_join",
  "tokens_revoked",
  "user_change",
].map((type) => `slack.${type}`);

export const slackWebhook: WebhookBehaviour<SlackTargetSecrets> = {
  eventTypes: SLACK_EVENT_TYPES,

  parse(request) {
    const body = readJsonObjectBody(request.rawBody);
    if (!body) return invalid("body is not a JSON object");
    switch (body.type) {
      case "url_verification": {
        // Slack expects the challenge echoed with a 200, plain text being one accepted form
        // (api.slack.com/events/url_verification). Slack signs this request like any other, and
        // ingest verifies it before answering.
        const challenge = body.challenge;
        if (typeof challenge !== "string" || challenge === "")
          return invalid("url_verification without challenge");
        return {
          kind: "response",
          response: {
            status: 200,
            headers: { "content-type": "text/plain; charset=utf-8" },
            body: challenge,
          },
        };
      }
      case "app_rate_limited":
        // A notice that Slack is dropping events for the app; there is nothing to deliver.
        return { kind: "response", response: { status: 200, body: "" } };
      case "event_callback":
        return parseEventCallback(request, body);
      default:
        return invalid("not an Events API request");
    }
  },

  verify(request, { targetSecrets, now }) {
    const secret = targetSecrets.signingSecret;
    if (!secret) return { ok: false, reason: "missing_secret" };
    const signature = request.headers[SLACK_SIGNATURE_HEADER];
    const timestamp = request.headers[SLACK_TIMESTAMP_HEADER];
    if (!signature || !timestamp) return { ok: false, reason: "missing_signature" };
    if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: "bad_signature" };

    const payload = Buffer.concat([Buffer.from(`v0:${timestamp}:`, "utf8"), request.rawBody]);
    if (!verifyHmacSha256Hex({ secret, payload, signatureHex: signature, prefix: "v0=" })) {
      return { ok: false, reason: "bad_signature" };
    }
    // Checked after the signature so `stale_timestamp` always means an authentic but old request.
    if (!isWithinTolerance(Number(timestamp) * 1000, now, SLACK_TIMESTAMP_TOLERANCE_MS)) {
      return { ok: false, reason: "stale_timestamp" };
    }
    return { ok: true };
  },

  resolveConnection(event, candidates) {
    const subjects = [event.externalSubjectId, enterpriseIdOf(event.payload)].filter(
      (s): s is string => s !== undefined,
    );
    for (const subject of subjects) {
      const match = candidates.find((c) => c.externalSubjectId === subject);
      if (match) return match.id;
    }
    return undefined;
  },
};

function parseEventCallback(request: WebhookRequest, body: JsonObject): WebhookParseResult {
  const eventId = body.event_id;
  const event = body.event;
  if (typeof eventId !== "string" || eventId === "")
    return invalid("event_callback without event_id");
  if (!isJsonObject(event) || typeof event.type !== "string" || event.type === "") {
    return invalid("event_callback without event.type");
  }
  const teamId = typeof body.team_id === "string" && body.team_id !== "" ? body.team_id : undefined;
  const occurredAt = secondsToIso(body.event_time);
  const retry = request.headers[SLACK_RETRY_NUM_HEADER];
  const retryAttempt = retry !== undefined && /^\d{1,6}$/.test(retry) ? Number(retry) : undefined;
  return {
    kind: "event",
    event: {
      deliveryId: eventId,
      eventType: `slack.${event.type}`,
      ...(teamId ? { externalSubjectId: teamId } : {}),
      ...(occurredAt ? { occurredAt } : {}),
      ...(retryAttempt !== undefined ? { retryAttempt } : {}),
      payload: body,
    },
  };
}

/** Org-wide installs are keyed by the enterprise id, which events carry beside the team id. */
function enterpriseIdOf(payload: unknown): string | undefined {
  if (!isJsonObject(payload)) return undefined;
  const id = payload.enterprise_id;
  return typeof id === "string" && id !== "" ? id : undefined;
}

function secondsToIso(value: unknown): string | undefined {
  if (typeof value !== "number") return undefined;
  const date = new Date(value * 1000);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

function invalid(message: string): WebhookParseResult {
  return { kind: "invalid", message };
}
