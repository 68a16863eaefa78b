import { type Clock, type FetchLike, joinUrl } from "@keyway/integrations-core";
import { z } from "zod";
import { GITHUB_MAX_PER_PAGE, githubExchange, nextPageCursor, unexpectedShape } from "./api-client";
import { signTargetAppJwt } from "./app-jwt";
import { type GitHubTargetWithSecrets, githubTargetConfigSchema } from "./target-config";
import { githubTargetSecretSchema } from "./target-secret-schema";

/**
 * The deliveries of a GitHub App's webhook ("REST API endpoints for GitHub App webhooks"), both
 * authenticated with the app JWT:
 * - `GET {api}/app/hook/deliveries?per_page=…&cursor=…` lists them newest first, paginated by a
 *   cursor in the `Link` header's `rel="next"`;
 * - `POST {api}/app/hook/deliveries/{delivery_id}/attempts` asks GitHub to send one again
 *   (202 Accepted). A redelivery is a new delivery with a new `id` and the same `guid` (the
 *   `X-GitHub-Delivery` header Keyway dedupes on).
 */

/** One delivery as listed. Fields Keyway does not read (`duration`, `throttled_at`, …) pass. */
const deliverySchema = z.object({
  id: z.number().int().nonnegative(),
  guid: z.string().min(1),
  delivered_at: z.iso.datetime({ offset: true }),
  redelivery: z.boolean(),
  /** What the webhook's URL answered; 0 when nothing answered. */
  status_code: z.number().int(),
  event: z.string(),
  action: z.string().nullish(),
});

export interface AppWebhookDelivery {
  /** GitHub's id of this delivery (what the redelivery endpoint takes). */
  id: string;
  /** The event's id, shared by a delivery and its redeliveries. */
  guid: string;
  deliveredAt: Date;
  redelivery: boolean;
  statusCode: number;
  event: string;
  action: string | null;
}

export interface AppWebhookDeliveryListing {
  /** Deliveries at or after `since`, newest first. */
  deliveries: AppWebhookDelivery[];
  /** True when `maxPages` ran out before the listing reached `since` or its end. */
  truncated: boolean;
}

/**
 * A target's GitHub App webhook, when the target is a GitHub target whose app can be
 * authenticated (private key and an issuer) and whose webhook Keyway verifies (webhook secret):
 * the targets whose missed deliveries Keyway can ask for again. `config` and `secrets` are the
 * outputs of the target's definition schemas; anything else (another family, a PAT-only target)
 * is undefined.
 */
export function githubAppWebhookTarget(target: {
  id: string;
  targetKey: string;
  familyId: string;
  config: unknown;
  secrets: unknown;
}): GitHubTargetWithSecrets | undefined {
  if (target.familyId !== "github") return undefined;
  const config = githubTargetConfigSchema.safeParse(target.config);
  const secrets = githubTargetSecretSchema.safeParse(target.secrets);
  if (!config.success || !secrets.success) return undefined;
  const { appPrivateKeyPem, appId, clientId, webhookSecret } = secrets.data;
  if (appPrivateKeyPem === undefined || (appId ?? clientId) === undefined) return undefined;
  if (webhookSecret === undefined) return undefined;
  return { id: target.id, targetKey: target.targetKey, config: config.data, secrets: secrets.data };
}

export interface ListAppWebhookDeliveriesInput {
  target: GitHubTargetWithSecrets;
  /** Oldest delivery wanted: the walk stops at the first page reaching past it. */
  since: Date;
  /** Upper bound on pages (100 deliveries each) read. */
  maxPages: number;
  fetch: FetchLike;
  clock: Clock;
}

/**
 * Lists the app's deliveries back to `since`, following the `Link` cursor for at most
 * `maxPages` pages. Failures throw `OAuth2Error` (401: GitHub refused the app JWT; temporary for
 * 5xx and network errors; an undocumented body is `invalid_response`).
 */
export async function listAppWebhookDeliveries(
  input: ListAppWebhookDeliveriesInput,
): Promise<AppWebhookDeliveryListing> {
  const deliveries: AppWebhookDelivery[] = [];
  let cursor: string | undefined;
  for (let page = 1; page <= input.maxPages; page++) {
    const url = new URL(joinUrl(input.target.config.apiBaseUrl, "app/hook/deliveries"));
    url.searchParams.set("per_page", String(GITHUB_MAX_PER_PAGE));
    if (cursor !== undefined) url.searchParams.set("cursor", cursor);
    const response = await githubExchange({
      fetch: input.fetch,
      url: url.toString(),
      token: await signTargetAppJwt(input.target, input.clock.now()),
      what: "webhook delivery listing",
    });
    const items = readDeliveries(response.body);
    deliveries.push(...items.filter((delivery) => delivery.deliveredAt >= input.since));
    cursor = nextPageCursor(response.headers.get("link"));
    // Newest first: a page that reaches past `since` ends the walk; later pages are older.
    const reachedSince = items.some((delivery) => delivery.deliveredAt < input.since);
    if (cursor === undefined || items.length === 0 || reachedSince) {
      return { deliveries, truncated: false };
    }
  }
  return { deliveries, truncated: true };
}

export interface RedeliverAppWebhookDeliveryInput {
  target: GitHubTargetWithSecrets;
  /** GitHub's id of a delivery (any delivery of the event: they share its guid). */
  deliveryId: string;
  fetch: FetchLike;
  clock: Clock;
}

/**
 * Asks GitHub to deliver a delivery again; returns GitHub's status (202). Refusals throw
 * `OAuth2Error` with the status: 4xx permanent (400/422: GitHub will not redeliver it, e.g. it is
 * too old; 404 unknown), 5xx and network errors temporary.
 */
export async function redeliverAppWebhookDelivery(
  input: RedeliverAppWebhookDeliveryInput,
): Promise<number> {
  const { status } = await githubExchange({
    fetch: input.fetch,
    url: joinUrl(
      input.target.config.apiBaseUrl,
      `app/hook/deliveries/${encodeURIComponent(input.deliveryId)}/attempts`,
    ),
    token: await signTargetAppJwt(input.target, input.clock.now()),
    method: "POST",
    what: "webhook redelivery",
  });
  return status;
}

/**
 * The events among `deliveries` whose webhook URL never gave an answer: every delivery of the
 * guid failed to connect, timed out (`status_code` 0) or got a 5xx — Keyway was down or failed.
 * One delivery per event (its newest, which GitHub is surest to still redeliver), oldest event
 * first. An event with any other answer is left alone: a 2xx means Keyway accepted it (stored,
 * or answered at once like `ping`), and a 4xx is a deliberate refusal (bad signature, unknown
 * target, too large) that a redelivery would only repeat.
 */
export function unansweredDeliveries(
  deliveries: readonly AppWebhookDelivery[],
): AppWebhookDelivery[] {
  const byGuid = new Map<string, { newest: AppWebhookDelivery; answered: boolean }>();
  for (const delivery of deliveries) {
    const answered = delivery.statusCode > 0 && delivery.statusCode < 500;
    const seen = byGuid.get(delivery.guid);
    if (seen === undefined) {
      byGuid.set(delivery.guid, { newest: delivery, answered });
      continue;
    }
    seen.answered ||= answered;
    if (delivery.deliveredAt > seen.newest.deliveredAt) seen.newest = delivery;
  }
  return [...byGuid.values()]
    .filter((event) => !event.answered)
    .map((event) => event.newest)
    .sort((a, b) => a.deliveredAt.getTime() - b.deliveredAt.getTime());
}

function readDeliveries(body: unknown): AppWebhookDelivery[] {
  const parsed = z.array(deliverySchema).safeParse(body);
  if (!parsed.success) throw unexpectedShape("webhook delivery listing");
  return parsed.data.map((delivery) => ({
    id: String(delivery.id),
    guid: delivery.guid,
    deliveredAt: new Date(delivery.delivered_at),
    redelivery: delivery.redelivery,
    statusCode: delivery.status_code,
    event: delivery.event,
    action: delivery.action ?? null,
  }));
}
