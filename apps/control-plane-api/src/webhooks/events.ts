import {
  type Database,
  type Executor,
  integrationTargets,
  webhookDeliveries,
  webhookEventPayload,
  webhookEvents,
  webhookSubscriptions,
} from "@keyway/db";
import { type Clock, subscribesTo } from "@keyway/integrations-core";
import type { JobQueue } from "@keyway/jobs";
import { and, asc, desc, eq, gte, lt, type SQL, sql } from "drizzle-orm";
import { appendAudit } from "../audit/service";
import type { OrganizationPrincipal } from "../auth/principal";
import { conflict, notFound } from "../errors";
import { createDelivery, enabledSubscriptions, readDeliveries, replayDelivery } from "./deliveries";
import type { DeliveryResponse, EventFilters, WebhookEventResponse } from "./schemas";

/**
 * Received webhook events as organizations and operators see them (SPEC §8), with their
 * deliveries, and manual replay. An organization sees its own events only (payload included,
 * never the raw body); operators see every organization's and the `unassigned` ones no
 * organization sees.
 */

export interface WebhookEventDeps {
  db: Database;
  clock: Clock;
  jobs: JobQueue;
}

type EventRow = typeof webhookEvents.$inferSelect;

/** Whose events: one organization's, or (operators) everyone's, optionally one organization's. */
export type EventScope = { organizationId: string } | { operator: true };

function toEvent(row: EventRow, targetKey: string): WebhookEventResponse {
  return {
    id: row.id,
    targetKey,
    connectionId: row.connectionId,
    eventType: row.eventType,
    externalDeliveryId: row.externalDeliveryId,
    externalSubjectId: row.externalSubjectId,
    status: row.status,
    attempts: row.attempts,
    lastError: row.lastError,
    receivedAt: row.receivedAt.toISOString(),
    processedAt: row.processedAt?.toISOString() ?? null,
  };
}

function scopeCondition(scope: EventScope, filters: Partial<EventFilters>): SQL | undefined {
  if ("organizationId" in scope) return eq(webhookEvents.organizationId, scope.organizationId);
  return filters.organizationId !== undefined
    ? eq(webhookEvents.organizationId, filters.organizationId)
    : undefined;
}

/** `type` takes the subscription filter syntax: exact, `prefix.*` or `*`. */
function typeCondition(pattern: string | undefined): SQL | undefined {
  if (pattern === undefined || pattern === "*") return undefined;
  if (pattern.endsWith(".*")) {
    return sql`starts_with(${webhookEvents.eventType}, ${pattern.slice(0, -1)})`;
  }
  return eq(webhookEvents.eventType, pattern);
}

/** Newest first, `limit` per page; `nextCursor` is the `before` of the next page. */
export async function listEvents(db: Database, scope: EventScope, filters: EventFilters) {
  const rows = await db
    .select({ event: webhookEvents, targetKey: integrationTargets.targetKey })
    .from(webhookEvents)
    .innerJoin(integrationTargets, eq(integrationTargets.id, webhookEvents.targetId))
    .where(
      and(
        scopeCondition(scope, filters),
        filters.targetKey !== undefined
          ? eq(integrationTargets.targetKey, filters.targetKey)
          : undefined,
        typeCondition(filters.type),
        filters.status !== undefined ? eq(webhookEvents.status, filters.status) : undefined,
        filters.receivedAfter !== undefined
          ? gte(webhookEvents.receivedAt, new Date(filters.receivedAfter))
          : undefined,
        filters.receivedBefore !== undefined
          ? lt(webhookEvents.receivedAt, new Date(filters.receivedBefore))
          : undefined,
        filters.before !== undefined ? lt(webhookEvents.id, filters.before) : undefined,
      ),
    )
    .orderBy(desc(webhookEvents.id))
    .limit(filters.limit + 1);
  const page = rows.slice(0, filters.limit);
  return {
    items: page.map((row) => ({
      ...toEvent(row.event, row.targetKey),
      ...("operator" in scope ? { organizationId: row.event.organizationId } : {}),
    })),
    nextCursor: rows.length > filters.limit ? (page.at(-1)?.event.id ?? null) : null,
  };
}

async function loadEvent(executor: Executor, scope: EventScope, id: string, lock = false) {
  const query = executor
    .select({
      event: webhookEvents,
      payload: webhookEventPayload,
      targetKey: integrationTargets.targetKey,
    })
    .from(webhookEvents)
    .innerJoin(integrationTargets, eq(integrationTargets.id, webhookEvents.targetId))
    .where(and(eq(webhookEvents.id, id), scopeCondition(scope, {})));
  const [row] = lock ? await query.for("update", { of: webhookEvents }) : await query;
  if (row === undefined) throw notFound(`webhook event ${id}`);
  return row;
}

async function deliveryIdsOf(executor: Executor, eventId: string): Promise<string[]> {
  const rows = await executor
    .select({ id: webhookDeliveries.id })
    .from(webhookDeliveries)
    .where(eq(webhookDeliveries.eventId, eventId))
    .orderBy(asc(webhookDeliveries.id));
  return rows.map((row) => row.id);
}

/** One event with its payload, stored headers and every delivery with its attempts. */
export async function getEvent(db: Database, scope: EventScope, id: string) {
  const { event, payload, targetKey } = await loadEvent(db, scope, id);
  const deliveries = await readDeliveries(db, undefined, await deliveryIdsOf(db, id));
  return {
    ...toEvent(event, targetKey),
    ...("operator" in scope ? { organizationId: event.organizationId } : {}),
    headers: event.headers,
    payload: payload ?? null,
    deliveries,
  };
}

export async function getDelivery(
  executor: Executor,
  organizationId: string,
  id: string,
): Promise<DeliveryResponse> {
  const [delivery] = await readDeliveries(executor, organizationId, [id]);
  if (delivery === undefined) throw notFound(`webhook delivery ${id}`);
  return delivery;
}

/**
 * Replays an event to every subscription that wants it now (enabled, filter matching): a
 * subscription without a delivery of it gets one (attempt 1), one with a delivery gets a fresh
 * attempt at once, whatever that delivery's state. A delivery whose attempt is running at this
 * moment is left alone (reported in `inFlight`): that attempt is the fresh one. An event no
 * subscription wanted (`ignored`), or whose processing failed, is `processed` once a delivery is
 * queued.
 */
export async function replayEvent(
  deps: WebhookEventDeps,
  principal: OrganizationPrincipal,
  id: string,
) {
  return deps.db.transaction(async (tx) => {
    // The event row is locked as processing locks it, so a replay and the fan-out take turns.
    const { event } = await loadEvent(tx, { organizationId: principal.organizationId }, id, true);
    const now = deps.clock.now();
    const subscriptions = (await enabledSubscriptions(tx, principal.organizationId)).filter(
      (subscription) => subscribesTo(subscription.eventTypes, event.eventType),
    );
    const queued: string[] = [];
    const inFlight: string[] = [];
    for (const subscription of subscriptions) {
      const created = await createDelivery(deps.jobs, tx, {
        eventId: event.id,
        subscriptionId: subscription.id,
        organizationId: principal.organizationId,
        now,
      });
      if (created !== undefined) {
        queued.push(created);
        continue;
      }
      const key = and(
        eq(webhookDeliveries.eventId, event.id),
        eq(webhookDeliveries.subscriptionId, subscription.id),
      );
      const [existing] = await tx
        .select({ id: webhookDeliveries.id, attempts: webhookDeliveries.attempts })
        .from(webhookDeliveries)
        .where(key)
        .for("update", { skipLocked: true });
      if (existing === undefined) {
        // Locked: the worker is making an attempt right now.
        const [running] = await tx
          .select({ id: webhookDeliveries.id })
          .from(webhookDeliveries)
          .where(key);
        if (running !== undefined) inFlight.push(running.id);
        continue;
      }
      await replayDelivery(deps.jobs, tx, existing, now);
      queued.push(existing.id);
    }
    if (queued.length > 0 && (event.status === "ignored" || event.status === "failed")) {
      await tx
        .update(webhookEvents)
        .set({ status: "processed", processedAt: now, lastError: null })
        .where(eq(webhookEvents.id, event.id));
    }
    await appendAudit(tx, deps.clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "webhook_event.replayed",
      subjectType: "webhook_event",
      subjectId: event.id,
      details: { deliveries: queued, inFlight },
    });
    return {
      eventId: event.id,
      deliveries: await readDeliveries(tx, principal.organizationId, queued),
      inFlight,
    };
  });
}

/**
 * A fresh attempt of one delivery, now, whatever its state (a `dead` or `failed` one becomes
 * `pending`). Refused while its subscription is disabled (409 `subscription_disabled`: enable it
 * first) and while an attempt of it is running (409 `delivery_in_progress`).
 */
export async function replayDeliveryById(
  deps: WebhookEventDeps,
  principal: OrganizationPrincipal,
  id: string,
): Promise<DeliveryResponse> {
  return deps.db.transaction(async (tx) => {
    const [found] = await tx
      .select({ id: webhookDeliveries.id, enabled: webhookSubscriptions.enabled })
      .from(webhookDeliveries)
      .innerJoin(
        webhookSubscriptions,
        eq(webhookSubscriptions.id, webhookDeliveries.subscriptionId),
      )
      .where(
        and(
          eq(webhookDeliveries.id, id),
          eq(webhookDeliveries.organizationId, principal.organizationId),
        ),
      );
    if (found === undefined) throw notFound(`webhook delivery ${id}`);
    if (!found.enabled) {
      throw conflict(
        "subscription_disabled",
        "the delivery's subscription is disabled; enable it before replaying",
      );
    }
    // Not waiting: a running attempt holds the row for as long as the subscriber takes to answer.
    const [delivery] = await tx
      .select({ id: webhookDeliveries.id, attempts: webhookDeliveries.attempts })
      .from(webhookDeliveries)
      .where(eq(webhookDeliveries.id, id))
      .for("update", { skipLocked: true });
    if (delivery === undefined) {
      throw conflict(
        "delivery_in_progress",
        "an attempt of this delivery is running; replay it once the attempt has finished",
      );
    }
    await replayDelivery(deps.jobs, tx, delivery, deps.clock.now());
    await appendAudit(tx, deps.clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "webhook_delivery.replayed",
      subjectType: "webhook_delivery",
      subjectId: id,
      details: { attempt: delivery.attempts + 1 },
    });
    return getDelivery(tx, principal.organizationId, id);
  });
}
