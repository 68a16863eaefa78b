import {
  decodeUtf8Body,
  isJsonObject,
  verifyHmacSha256Hex,
  type WebhookBehaviour,
  type WebhookParseResult,
  type WebhookRequest,
} from "@keyway/integrations-core";
import type { GitHubTargetSecrets } from "./target-secret-schema";

/**
 * Events a GitHub App or repository webhook commonly delivers, as Keyway event types. Events with
 * an `action` field become `github.<event>.<action>`, others `github.<event>`.
 */
export const GITHUB_EVENT_TYPES = [
  "github.ping",
  "github.push",
  "github.create",
  "github.delete",
  "github.release.published",
  "github.pull_request.opened",
  "github.pull_request.edited",
  "github.pull_request.closed",
  "github.pull_request.reopened",
  "github.pull_request.synchronize",
  "github.pull_request.ready_for_review",
  "github.pull_request.labeled",
  "github.pull_request.review_requested",
  "github.pull_request_review.submitted",
  "github.pull_request_review_comment.created",
  "github.issues.opened",
  "github.issues.edited",
  "github.issues.closed",
  "github.issues.reopened",
  "github.issues.assigned",
  "github.issues.labeled",
  "github.issue_comment.created",
  "github.issue_comment.edited",
  "github.issue_comment.deleted",
  "github.check_run.completed",
  "github.check_suite.completed",
  "github.workflow_run.completed",
  "github.installation.created",
  "github.installation.deleted",
  "github.installation.suspend",
  "github.installation.unsuspend",
  "github.installation.new_permissions_accepted",
  "github.installation_repositories.added",
  "github.installation_repositories.removed",
] as const;

const EVENT_NAME = /^[a-z][a-z0-9_]*$/;
const ACTION_NAME = /^[a-z][a-z0-9_]*$/;

/**
 * Webhooks from GitHub ("Webhook events and payloads", "Validating webhook deliveries"):
 * - `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>` under the webhook secret;
 * - `X-GitHub-Delivery` is the delivery id (the dedupe key; a redelivery keeps it);
 * - `X-GitHub-Event` names the event, the body's `action` the sub-event;
 * - GitHub signs no timestamp, so there is no replay window: dedupe on the delivery id is the
 *   replay defence;
 * - `ping` (sent when a hook is created) is answered 200 at once, nothing is stored;
 * - the body is JSON, or `payload=<json>` when the hook uses the form content type.
 */
export const githubWebhook: WebhookBehaviour<GitHubTargetSecrets> = {
  eventTypes: GITHUB_EVENT_TYPES,

  parse(request: WebhookRequest): WebhookParseResult {
    const event = request.headers["x-github-event"];
    const deliveryId = request.headers["x-github-delivery"];
    if (event === undefined || !EVENT_NAME.test(event)) {
      return { kind: "invalid", message: "missing or malformed X-GitHub-Event header" };
    }
    if (deliveryId === undefined || deliveryId === "") {
      return { kind: "invalid", message: "missing X-GitHub-Delivery header" };
    }
    const payload = readPayload(request);
    if (!isJsonObject(payload)) {
      return { kind: "invalid", message: "body is not a JSON object" };
    }
    if (event === "ping") {
      return {
        kind: "response",
        response: {
          status: 200,
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ ok: true }),
        },
      };
    }

    const action = payload.action;
    const eventType =
      typeof action === "string" && ACTION_NAME.test(action)
        ? `github.${event}.${action}`
        : `github.${event}`;
    const installation = payload.installation;
    const installationId =
      isJsonObject(installation) &&
      (typeof installation.id === "number" || typeof installation.id === "string")
        ? String(installation.id)
        : undefined;
    return {
      kind: "event",
      event: {
        deliveryId,
        eventType,
        ...(installationId !== undefined ? { externalSubjectId: installationId } : {}),
        payload,
      },
    };
  },

  verify(request, ctx) {
    const secret = ctx.targetSecrets.webhookSecret;
    if (secret === undefined || secret === "") return { ok: false, reason: "missing_secret" };
    const signature = request.headers["x-hub-signature-256"];
    if (signature === undefined || signature === "")
      return { ok: false, reason: "missing_signature" };
    const ok = verifyHmacSha256Hex({
      secret,
      payload: request.rawBody,
      signatureHex: signature,
      prefix: "sha256=",
    });
    return ok ? { ok: true } : { ok: false, reason: "bad_signature" };
  },

  /**
   * The connection whose installation sent the event. Installation ids are compared as strings.
   * When no connection, or more than one, holds the installation the event is left unassigned:
   * guessing between two organizations' connections would hand one of them the other's events.
   */
  resolveConnection(event, candidates) {
    if (event.externalSubjectId === undefined) return undefined;
    const matches = candidates.filter((c) => c.externalSubjectId === event.externalSubjectId);
    return matches.length === 1 ? matches[0]?.id : undefined;
  },
};

function readPayload(request: WebhookRequest): unknown {
  let text: string;
  try {
    text = decodeUtf8Body(request.rawBody);
  } catch {
    return undefined;
  }
  const contentType = request.headers["content-type"] ?? "";
  if (contentType.toLowerCase().startsWith("application/x-www-form-urlencoded")) {
    const form = new URLSearchParams(text).get("payload");
    if (form === null) return undefined;
    text = form;
  }
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
