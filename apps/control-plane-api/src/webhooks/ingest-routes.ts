import { createRoute, z } from "@hono/zod-openapi";
import type { FrontDoorRoutes } from "../app";
import { createRouter } from "../router";
import { STORED_WEBHOOK_HEADERS } from "./event-writer";
import { createIngestDeps, type IngestDeps, receiveWebhook } from "./ingest";
import { WEBHOOK_INGEST_PATH, webhookFrontDoor } from "./ingest-front-door";
import { rawWebhookRequest } from "./raw-request";

const targetKeyParams = z.object({
  targetKey: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "targetKey", in: "path" } }),
});

const acceptedSchema = z
  .object({
    id: z.string().describe("the stored event's id (the first one's, for a duplicate)"),
    duplicate: z.boolean().describe("true when this delivery id was received before"),
  })
  .openapi("WebhookAccepted");

/**
 * `POST /p/integration/webhooks/{targetKey}` (SPEC §8): public, authenticated by the provider's
 * signature. The raw body is read once, bounded by `webhooks.body_limit_bytes` (413 as soon as the
 * declared or streamed size passes it, before the rest is read).
 *
 * Served twice over one ingest (one target cache, one event writer): by a plain Node handler in
 * front of hono for the requests that reach it through the HTTP server with a plain target key
 * (`ingest-front-door.ts`), and by this hono route for everything else (`app.request`, keys with
 * percent-encoding), with the same answers.
 */
export const webhookIngest: FrontDoorRoutes = (deps) => {
  const ingest = createIngestDeps(deps);
  return { routes: webhookIngestRoutes(ingest), frontDoor: webhookFrontDoor(deps, ingest) };
};

function webhookIngestRoutes(ingest: IngestDeps) {
  const router = createRouter();

  router.openapi(
    createRoute({
      method: "post",
      path: WEBHOOK_INGEST_PATH,
      tags: ["webhooks"],
      description:
        "Provider webhooks. Verified with the target's secret (GitHub `X-Hub-Signature-256`, " +
        "Slack `X-Slack-Signature` with a 5-minute window, Linear `Linear-Signature` with a 60 s " +
        "window, Standard Webhooks for http-api), deduplicated by the provider's delivery id, " +
        "stored and queued for processing in one transaction. Immediate answers (Slack's " +
        "`url_verification` challenge, GitHub's `ping`) are given only to verified requests. " +
        `Stored headers: ${STORED_WEBHOOK_HEADERS.join(", ")}.`,
      request: { params: targetKeyParams },
      responses: {
        200: { description: "An immediate answer the provider expects (challenge, ping)" },
        202: {
          description: "Stored and queued (or a duplicate of a stored delivery)",
          content: { "application/json": { schema: acceptedSchema } },
        },
        400: { description: "`invalid_webhook`: the body or headers are malformed" },
        401: { description: "`invalid_signature` or `stale_timestamp`" },
        404: { description: "Unknown or disabled target, or one without webhooks" },
        413: { description: "Body over `webhooks.body_limit_bytes`" },
      },
    }),
    async (c) => {
      const { targetKey } = c.req.valid("param");
      const requestId = c.get("requestId");
      const result = await receiveWebhook(ingest, {
        targetKey,
        requestId,
        deadline: c.get("deadline"),
        raw: rawWebhookRequest(c),
      });
      if (result.kind === "response") {
        const { status, headers, body } = result.response;
        return c.body(body, status as 200, headers ?? {});
      }
      return c.json({ id: result.id, duplicate: result.duplicate }, 202);
    },
  );

  return router;
}
