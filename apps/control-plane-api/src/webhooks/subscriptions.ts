import type { KeyRing } from "@keyway/crypto";
import { type Database, type Executor, newId, webhookSubscriptions } from "@keyway/db";
import { type Clock, generateStandardWebhookSecret } from "@keyway/integrations-core";
import { and, asc, eq } from "drizzle-orm";
import { appendAudit } from "../audit/service";
import type { OrganizationPrincipal } from "../auth/principal";
import { decryptSubscriptionSecret, encryptSubscriptionSecret } from "../credentials/secret-store";
import type { AppSettings } from "../deps";
import { notFound, unprocessable } from "../errors";
import type {
  CreateSubscriptionInput,
  SubscriptionResponse,
  UpdateSubscriptionInput,
} from "./schemas";
import { resolveSubscriberAddresses, SubscriberAddressError } from "./subscriber-address";

/**
 * Webhook subscriptions (SPEC §8): where an organization wants its events delivered, which types,
 * and the `whsec_` secret deliveries are signed with (Standard Webhooks). The secret is generated
 * here, shown once (at creation and at each rotation) and stored encrypted. A rotation keeps the
 * previous secret signing for `webhooks.secret_rotation_overlap_hours`, so subscribers can move to
 * the new one without a message failing verification; only two secrets ever sign (rotating again
 * during an overlap drops the oldest).
 */

type SubscriptionRow = typeof webhookSubscriptions.$inferSelect;

export interface SubscriptionDeps {
  db: Database;
  keyRing: KeyRing;
  clock: Clock;
  settings: Pick<
    AppSettings,
    "webhookSecretRotationOverlapHours" | "allowPrivateWebhookSubscribers"
  >;
}

/** `disabled_reason` values: set by the worker on 410, or by a user turning deliveries off. */
export const DISABLED_BY_USER = "disabled_by_user";

export function toSubscription(row: SubscriptionRow, now: Date): SubscriptionResponse {
  const overlap =
    row.previousSecretExpiresAt !== null && row.previousSecretExpiresAt.getTime() > now.getTime();
  return {
    id: row.id,
    url: row.url,
    description: row.description,
    eventTypes: row.eventTypes,
    enabled: row.enabled,
    disabledReason: row.disabledReason,
    previousSecretExpiresAt: overlap ? (row.previousSecretExpiresAt?.toISOString() ?? null) : null,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/**
 * Refuses a URL whose host does not resolve, or resolves to a non-public address while private
 * subscribers are not allowed (422). The worker checks again at every send.
 */
async function checkSubscriberUrl(deps: SubscriptionDeps, url: string): Promise<void> {
  try {
    await resolveSubscriberAddresses(new URL(url), {
      allowPrivate: deps.settings.allowPrivateWebhookSubscribers,
    });
  } catch (error) {
    if (!(error instanceof SubscriberAddressError)) throw error;
    throw unprocessable(
      error.reason === "private" ? "subscriber_url_private" : "subscriber_url_unresolvable",
      error.message,
      { field: "url" },
    );
  }
}

const unique = (patterns: readonly string[]) => [...new Set(patterns)];

export async function createSubscription(
  deps: SubscriptionDeps,
  principal: OrganizationPrincipal,
  input: CreateSubscriptionInput,
): Promise<SubscriptionResponse & { secret: string }> {
  await checkSubscriberUrl(deps, input.url);
  const now = deps.clock.now();
  const id = newId("webhookSubscription", now);
  const secret = generateStandardWebhookSecret();
  const enabled = input.enabled ?? true;
  const row: SubscriptionRow = {
    id,
    organizationId: principal.organizationId,
    url: input.url,
    description: input.description ?? null,
    eventTypes: unique(input.eventTypes),
    secretCiphertext: encryptSubscriptionSecret(deps.keyRing, id, "current", secret),
    previousSecretCiphertext: null,
    previousSecretExpiresAt: null,
    enabled,
    disabledReason: enabled ? null : DISABLED_BY_USER,
    createdBy: principal.actor,
    createdAt: now,
    updatedAt: now,
  };
  return deps.db.transaction(async (tx) => {
    await tx.insert(webhookSubscriptions).values(row);
    await appendAudit(tx, deps.clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "webhook_subscription.created",
      subjectType: "webhook_subscription",
      subjectId: id,
      details: { eventTypes: unique(input.eventTypes), enabled },
    });
    return { ...toSubscription(row, now), secret };
  });
}

export async function listSubscriptions(
  deps: Pick<SubscriptionDeps, "db" | "clock">,
  organizationId: string,
): Promise<SubscriptionResponse[]> {
  const rows = await deps.db
    .select()
    .from(webhookSubscriptions)
    .where(eq(webhookSubscriptions.organizationId, organizationId))
    .orderBy(asc(webhookSubscriptions.id));
  const now = deps.clock.now();
  return rows.map((row) => toSubscription(row, now));
}

/** The organization's subscription, optionally locked; another organization's id is a 404. */
async function loadSubscription(
  executor: Executor,
  organizationId: string,
  id: string,
  options: { lock?: boolean } = {},
): Promise<SubscriptionRow> {
  const query = executor
    .select()
    .from(webhookSubscriptions)
    .where(
      and(eq(webhookSubscriptions.id, id), eq(webhookSubscriptions.organizationId, organizationId)),
    );
  const [row] = options.lock ? await query.for("update") : await query;
  if (row === undefined) throw notFound(`webhook subscription ${id}`);
  return row;
}

export async function getSubscription(
  deps: Pick<SubscriptionDeps, "db" | "clock">,
  organizationId: string,
  id: string,
): Promise<SubscriptionResponse> {
  return toSubscription(await loadSubscription(deps.db, organizationId, id), deps.clock.now());
}

/**
 * Changes the URL (checked again), description, filter or enabled flag. Enabling clears the
 * reason deliveries stopped; deliveries that failed while it was off can be replayed.
 */
export async function updateSubscription(
  deps: SubscriptionDeps,
  principal: OrganizationPrincipal,
  id: string,
  input: UpdateSubscriptionInput,
): Promise<SubscriptionResponse> {
  // Not found first: a foreign id answers 404 before its URL is looked at.
  await loadSubscription(deps.db, principal.organizationId, id);
  if (input.url !== undefined) await checkSubscriberUrl(deps, input.url);
  return deps.db.transaction(async (tx) => {
    const current = await loadSubscription(tx, principal.organizationId, id, { lock: true });
    const now = deps.clock.now();
    const changes: Partial<SubscriptionRow> = { updatedAt: now };
    if (input.url !== undefined) changes.url = input.url;
    if (input.description !== undefined) changes.description = input.description;
    if (input.eventTypes !== undefined) changes.eventTypes = unique(input.eventTypes);
    if (input.enabled !== undefined && input.enabled !== current.enabled) {
      changes.enabled = input.enabled;
      changes.disabledReason = input.enabled ? null : DISABLED_BY_USER;
    }
    await tx.update(webhookSubscriptions).set(changes).where(eq(webhookSubscriptions.id, id));
    await appendAudit(tx, deps.clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "webhook_subscription.updated",
      subjectType: "webhook_subscription",
      subjectId: id,
      details: {
        fields: Object.entries(input)
          .filter(([, value]) => value !== undefined)
          .map(([key]) => key)
          .sort(),
        ...(input.enabled !== undefined ? { enabled: input.enabled } : {}),
      },
    });
    return toSubscription({ ...current, ...changes }, now);
  });
}

/**
 * Deletes a subscription with its deliveries and their attempt records. An attempt in flight
 * finishes first (the worker holds its subscription while sending).
 */
export async function deleteSubscription(
  deps: Pick<SubscriptionDeps, "db" | "clock">,
  principal: OrganizationPrincipal,
  id: string,
): Promise<void> {
  await deps.db.transaction(async (tx) => {
    const row = await loadSubscription(tx, principal.organizationId, id, { lock: true });
    await tx.delete(webhookSubscriptions).where(eq(webhookSubscriptions.id, id));
    await appendAudit(tx, deps.clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "webhook_subscription.deleted",
      subjectType: "webhook_subscription",
      subjectId: id,
      details: { url: row.url },
    });
  });
}

/**
 * A new signing secret, shown once. The current one becomes the previous one and keeps signing
 * (a second `v1,` signature) until the overlap ends; a previous one still in its overlap is
 * dropped. An overlap of 0 hours replaces the secret at once.
 */
export async function rotateSubscriptionSecret(
  deps: SubscriptionDeps,
  principal: OrganizationPrincipal,
  id: string,
): Promise<SubscriptionResponse & { secret: string }> {
  return deps.db.transaction(async (tx) => {
    const current = await loadSubscription(tx, principal.organizationId, id, { lock: true });
    const now = deps.clock.now();
    const overlapMs = deps.settings.webhookSecretRotationOverlapHours * 3_600_000;
    const secret = generateStandardWebhookSecret();
    const previous =
      overlapMs > 0
        ? encryptSubscriptionSecret(
            deps.keyRing,
            id,
            "previous",
            decryptSubscriptionSecret(deps.keyRing, id, "current", current.secretCiphertext),
          )
        : null;
    const changes = {
      secretCiphertext: encryptSubscriptionSecret(deps.keyRing, id, "current", secret),
      previousSecretCiphertext: previous,
      previousSecretExpiresAt: previous === null ? null : new Date(now.getTime() + overlapMs),
      updatedAt: now,
    };
    await tx.update(webhookSubscriptions).set(changes).where(eq(webhookSubscriptions.id, id));
    await appendAudit(tx, deps.clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "webhook_subscription.secret_rotated",
      subjectType: "webhook_subscription",
      subjectId: id,
      details: { overlapHours: deps.settings.webhookSecretRotationOverlapHours },
    });
    return { ...toSubscription({ ...current, ...changes }, now), secret };
  });
}
