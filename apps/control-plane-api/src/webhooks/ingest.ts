import type { KeyRing } from "@keyway/crypto";
import {
  type Database,
  type Executor,
  integrationConnections,
  newId,
  webhookEvents,
} from "@keyway/db";
import type {
  AnyIntegrationDefinition,
  Clock,
  IntegrationRegistry,
  WebhookConnectionCandidate,
  WebhookEvent,
  WebhookImmediateResponse,
  WebhookRequest,
  WebhookVerifyFailure,
} from "@keyway/integrations-core";
import { normalizeHeaders, pickHeaders } from "@keyway/integrations-core";
import { type JobQueue, webhookProcessQueue } from "@keyway/jobs";
import { and, eq, ne, or, sql } from "drizzle-orm";
import { appendAudit } from "../audit/service";
import { type ApiErrorCode, DomainError } from "../errors";
import type { FeedMessage, InvalidationFeed } from "../events/invalidations";
import type { Logger } from "../logger";
import { loadTargetForUse } from "../targets/service";

/**
 * The provider front door (SPEC §8): `POST /p/integration/webhooks/:targetKey`.
 *
 * Order matters. The signature is verified with the target's secret before anything else is
 * answered — an immediate answer (Slack's challenge, GitHub's ping) included — so a stranger gets
 * the same 401 whatever the target's connections are, and cannot probe which installations are
 * connected. Then the definition parses the event, the connection is resolved (or the event is
 * kept `unassigned`: never guessed), and in ONE transaction the event, its dedupe key (target +
 * provider delivery id, a unique index) and the processing job are written. A redelivered event
 * answers `duplicate: true`; it is queued again only while it was never processed (the job queue
 * drops the copy when one is already waiting).
 *
 * Every refusal (404, 401, 400, 413) stores nothing but an audit entry.
 */

export interface IngestDeps {
  db: Database;
  registry: IntegrationRegistry;
  keyRing: KeyRing;
  clock: Clock;
  jobs: JobQueue;
  logger: Logger;
  targets: WebhookTargets;
}

export interface IngestRequest {
  targetKey: string;
  headers: Headers;
  rawBody: Uint8Array;
  requestId: string;
}

export type IngestResult =
  | { kind: "response"; response: WebhookImmediateResponse }
  | { kind: "accepted"; id: string; duplicate: boolean };

/** Headers kept with an event: what identifies and describes the delivery, never credentials. */
export const STORED_WEBHOOK_HEADERS = [
  "content-type",
  "user-agent",
  "x-github-event",
  "x-github-delivery",
  "x-github-hook-id",
  "x-github-hook-installation-target-id",
  "x-github-hook-installation-target-type",
  "x-slack-request-timestamp",
  "x-slack-retry-num",
  "x-slack-retry-reason",
  "linear-delivery",
  "linear-event",
  "webhook-id",
  "webhook-timestamp",
] as const;

const REFUSAL_MESSAGES: Record<WebhookVerifyFailure, string> = {
  missing_secret: "this target does not accept webhooks (no webhook secret is configured)",
  missing_signature: "the request is not signed",
  bad_signature: "the signature does not match",
  stale_timestamp: "the signed timestamp is outside the replay window",
};

/** A usable target for ingest: definition, parsed config and secrets. */
interface IngestTarget {
  id: string;
  targetKey: string;
  definition: AnyIntegrationDefinition;
  config: unknown;
  secrets: unknown;
}

/**
 * Targets by key for ingest, kept in memory: a provider may send a thousand events a second and
 * each needs the target's parsed config and decrypted secret. Entries are dropped on the
 * invalidation feed's `target.*` events and its `resync`, and live at most a minute in any case.
 * Unknown keys are never cached (a stranger cannot fill the cache).
 */
export interface WebhookTargets {
  get(targetKey: string): Promise<IngestTarget | undefined>;
  close(): void;
}

const TARGET_TTL_MS = 60_000;

export function createWebhookTargets(deps: {
  db: Database;
  registry: IntegrationRegistry;
  keyRing: KeyRing;
  clock: Clock;
  invalidations: InvalidationFeed;
}): WebhookTargets {
  const cache = new Map<string, { target: IngestTarget; loadedAtMs: number }>();
  const unsubscribe = deps.invalidations.subscribe((message: FeedMessage) => {
    if (message.type === "resync" || message.type.startsWith("target.")) cache.clear();
  });
  return {
    async get(targetKey) {
      const nowMs = deps.clock.now().getTime();
      const cached = cache.get(targetKey);
      if (cached !== undefined && nowMs - cached.loadedAtMs < TARGET_TTL_MS) return cached.target;
      cache.delete(targetKey);
      let target: IngestTarget;
      try {
        const usable = await loadTargetForUse(deps.db, deps, { targetKey });
        if (usable.definition.webhook === undefined) return undefined;
        target = {
          id: usable.row.id,
          targetKey,
          definition: usable.definition,
          config: usable.config,
          secrets: usable.secrets(),
        };
      } catch (error) {
        // Unknown, disabled, or no longer valid: all look the same to a provider.
        if (error instanceof DomainError) return undefined;
        throw error;
      }
      cache.set(targetKey, { target, loadedAtMs: nowMs });
      return target;
    },
    close: unsubscribe,
  };
}

/** Refusals of the front door: the HTTP answer and the reason recorded in the audit log. */
export class WebhookRefusal extends DomainError {
  constructor(
    kind: "not_found" | "unauthorized" | "bad_request" | "payload_too_large",
    code: ApiErrorCode,
    message: string,
    readonly reason: string,
  ) {
    super(kind, code, message);
  }
}

export async function ingestWebhook(deps: IngestDeps, input: IngestRequest): Promise<IngestResult> {
  try {
    return await ingest(deps, input);
  } catch (error) {
    if (error instanceof WebhookRefusal) await auditRefusal(deps, input, error);
    throw error;
  }
}

/** The audit entry a refused delivery leaves (the only thing it leaves). */
export async function auditRefusal(
  deps: Pick<IngestDeps, "db" | "clock" | "logger">,
  input: Pick<IngestRequest, "targetKey" | "requestId">,
  refusal: WebhookRefusal,
): Promise<void> {
  try {
    await appendAudit(deps.db, deps.clock, {
      organizationId: null,
      actor: "provider",
      action: "webhook.rejected",
      subjectType: "webhook_target",
      subjectId: input.targetKey,
      details: { status: refusal.status, code: refusal.code, reason: refusal.reason },
    });
  } catch (error) {
    // The refusal still stands; a failed audit write is logged, not turned into a 500.
    deps.logger.error("could not audit a refused webhook", {
      requestId: input.requestId,
      code: refusal.code,
      error: error instanceof Error ? error.name : "unknown",
    });
  }
}

async function ingest(deps: IngestDeps, input: IngestRequest): Promise<IngestResult> {
  const target = await deps.targets.get(input.targetKey);
  if (target === undefined) {
    throw new WebhookRefusal(
      "not_found",
      "not_found",
      "webhook target not found",
      "unknown_target",
    );
  }
  const webhook = target.definition.webhook;
  if (webhook === undefined) {
    throw new WebhookRefusal("not_found", "not_found", "webhook target not found", "no_webhooks");
  }
  const request: WebhookRequest = {
    headers: normalizeHeaders(input.headers),
    rawBody: input.rawBody,
  };

  const verified = webhook.verify(request, {
    targetConfig: target.config,
    targetSecrets: target.secrets,
    now: deps.clock.now(),
  });
  if (!verified.ok) {
    throw new WebhookRefusal(
      "unauthorized",
      verified.reason === "stale_timestamp" ? "stale_timestamp" : "invalid_signature",
      REFUSAL_MESSAGES[verified.reason],
      verified.reason,
    );
  }

  const parsed = webhook.parse(request);
  if (parsed.kind === "invalid") {
    throw new WebhookRefusal("bad_request", "invalid_webhook", parsed.message, "malformed");
  }
  if (parsed.kind === "response") return parsed;
  const event = parsed.event;

  const connectionId = webhook.resolveConnection(
    event,
    await connectionCandidates(deps.db, target.id, event),
  );
  const organizationId =
    connectionId === undefined ? undefined : await organizationOf(deps.db, connectionId);
  return storeEvent(deps, target, request, event, connectionId, organizationId);
}

/**
 * The connections a definition may choose from: those naming the event's subject (or whose id
 * the event names); otherwise the target's first two, enough for "the only connection" rules.
 * Revoked connections never receive events.
 */
async function connectionCandidates(
  db: Executor,
  targetId: string,
  event: WebhookEvent,
): Promise<WebhookConnectionCandidate[]> {
  const select = (where: ReturnType<typeof and>, limit: number) =>
    db
      .select({
        id: integrationConnections.id,
        externalSubjectId: integrationConnections.externalSubjectId,
        config: integrationConnections.config,
      })
      .from(integrationConnections)
      .where(where)
      .limit(limit);
  const live = and(
    eq(integrationConnections.targetId, targetId),
    ne(integrationConnections.status, "revoked"),
  );
  const subject = event.externalSubjectId;
  let rows =
    subject === undefined
      ? []
      : await select(
          and(
            live,
            or(
              eq(integrationConnections.externalSubjectId, subject),
              eq(integrationConnections.id, subject),
            ),
          ),
          100,
        );
  if (rows.length === 0) rows = await select(live, 2);
  return rows.map((row) => ({
    id: row.id,
    ...(row.externalSubjectId !== null ? { externalSubjectId: row.externalSubjectId } : {}),
    config: row.config,
  }));
}

async function organizationOf(db: Executor, connectionId: string): Promise<string | undefined> {
  const [row] = await db
    .select({ organizationId: integrationConnections.organizationId })
    .from(integrationConnections)
    .where(eq(integrationConnections.id, connectionId))
    .limit(1);
  return row?.organizationId;
}

async function storeEvent(
  deps: IngestDeps,
  target: IngestTarget,
  request: WebhookRequest,
  event: WebhookEvent,
  connectionId: string | undefined,
  organizationId: string | undefined,
): Promise<IngestResult> {
  const receivedAt = deps.clock.now();
  const assigned = connectionId !== undefined && organizationId !== undefined;
  return deps.db.transaction(async (tx) => {
    const [inserted] = await tx
      .insert(webhookEvents)
      .values({
        id: newId("webhookEvent", receivedAt),
        targetId: target.id,
        organizationId: assigned ? organizationId : null,
        connectionId: assigned ? connectionId : null,
        externalDeliveryId: event.deliveryId,
        eventType: event.eventType,
        externalSubjectId: event.externalSubjectId ?? null,
        headers: pickHeaders(request.headers, STORED_WEBHOOK_HEADERS),
        rawBody: Buffer.from(request.rawBody),
        payload: event.payload,
        status: assigned ? "received" : "unassigned",
        providerRetry: event.retryAttempt ?? null,
        receivedAt,
      })
      .onConflictDoNothing({ target: [webhookEvents.targetId, webhookEvents.externalDeliveryId] })
      .returning({ id: webhookEvents.id });

    if (inserted !== undefined) {
      if (assigned) {
        await deps.jobs.enqueue(
          tx,
          webhookProcessQueue,
          { eventId: inserted.id },
          { singletonKey: inserted.id },
        );
      }
      await appendAudit(tx, deps.clock, {
        organizationId: assigned ? organizationId : null,
        actor: "provider",
        action: "webhook.received",
        subjectType: "webhook_event",
        subjectId: inserted.id,
        details: {
          targetKey: target.targetKey,
          eventType: event.eventType,
          deliveryId: event.deliveryId,
          ...(assigned ? { connectionId } : { unassigned: true }),
        },
      });
      return { kind: "accepted", id: inserted.id, duplicate: false } as const;
    }

    // The same delivery again (a provider retry or a redelivery). Locked, so concurrent copies
    // decide one after another.
    const [existing] = await tx
      .select({ id: webhookEvents.id, status: webhookEvents.status })
      .from(webhookEvents)
      .where(
        and(
          eq(webhookEvents.targetId, target.id),
          eq(webhookEvents.externalDeliveryId, event.deliveryId),
        ),
      )
      .for("update");
    if (existing === undefined) {
      // Deleted by retention between the insert and the select: nothing left to deduplicate.
      throw new Error("webhook event vanished while deduplicating");
    }
    if (existing.status === "received" || existing.status === "failed") {
      // Never processed: queue it again (dropped by the queue when a job is already waiting).
      await deps.jobs.enqueue(
        tx,
        webhookProcessQueue,
        { eventId: existing.id },
        { singletonKey: existing.id },
      );
      if (existing.status === "failed") {
        await tx
          .update(webhookEvents)
          .set({ status: "received", lastError: null })
          .where(eq(webhookEvents.id, existing.id));
      }
    }
    return { kind: "accepted", id: existing.id, duplicate: true } as const;
  });
}

/** Used by tests and the operator view: how many events a target holds. */
export async function countEvents(db: Executor, targetId: string): Promise<number> {
  const [row] = await db
    .select({ count: sql<number>`count(*)::int` })
    .from(webhookEvents)
    .where(eq(webhookEvents.targetId, targetId));
  return row?.count ?? 0;
}
