import type { KeyRing } from "@keyway/crypto";
import type { Database } from "@keyway/db";
import type {
  Clock,
  IntegrationRegistry,
  NormalizedHeaders,
  WebhookImmediateResponse,
  WebhookRequest,
  WebhookVerifyFailure,
} from "@keyway/integrations-core";
import { appendAudit } from "../audit/service";
import type { AppDeps } from "../deps";
import { type ApiErrorCode, DomainError } from "../errors";
import type { FeedMessage, InvalidationFeed } from "../events/invalidations";
import type { Logger } from "../logger";
import { loadTargetForUse } from "../targets/service";
import { createEventWriter, type EventWriter, type IngestTarget } from "./event-writer";
import { BodyTooLarge, type RawWebhookRequest } from "./raw-request";

/**
 * The provider front door (SPEC §8): `POST /p/integration/webhooks/:targetKey`.
 *
 * Order matters. The signature is verified with the target's secret before anything else is
 * answered — an immediate answer (Slack's challenge, GitHub's ping) included — so a stranger gets
 * the same 401 whatever the target's connections are, and cannot probe which installations are
 * connected. Then the definition parses the event, and the event writer (event-writer.ts)
 * resolves the connection (or keeps the event `unassigned`: never guessed) and writes in ONE
 * transaction the event, its dedupe key (target + provider delivery id, a unique index), the
 * processing job and the audit entry. A redelivered event answers `duplicate: true`; it is queued
 * again only while it was never processed (the job queue drops the copy when one is already
 * waiting).
 *
 * Every refusal (404, 401, 400, 413) stores nothing but an audit entry.
 */

export interface IngestDeps {
  db: Database;
  clock: Clock;
  logger: Logger;
  targets: WebhookTargets;
  events: EventWriter;
  /** `webhooks.body_limit_bytes`. */
  bodyLimit: number;
}

/**
 * An app's ingest: one target cache and one event writer (whose batches are its group commits),
 * shared by the route's hono handler and its front door (`ingest-front-door.ts`).
 */
export function createIngestDeps(deps: AppDeps): IngestDeps {
  return {
    db: deps.database.db,
    clock: deps.clock,
    logger: deps.logger,
    targets: createWebhookTargets({
      db: deps.database.db,
      registry: deps.registry,
      keyRing: deps.keyRing,
      clock: deps.clock,
      invalidations: deps.invalidations,
    }),
    events: createEventWriter({ database: deps.database, clock: deps.clock, jobs: deps.jobs }),
    bodyLimit: deps.settings.webhookBodyLimitBytes,
  };
}

export interface IngestRequest {
  targetKey: string;
  /** Normalized (`normalizeHeaders`): lower-case names, one value each. */
  headers: NormalizedHeaders;
  rawBody: Uint8Array;
  requestId: string;
  /** The request's deadline (`performance.now()` clock): its event commits only before it. */
  deadline: number;
}

export type IngestResult =
  | { kind: "response"; response: WebhookImmediateResponse }
  | { kind: "accepted"; id: string; duplicate: boolean };

const REFUSAL_MESSAGES: Record<WebhookVerifyFailure, string> = {
  missing_secret: "this target does not accept webhooks (no webhook secret is configured)",
  missing_signature: "the request is not signed",
  bad_signature: "the signature does not match",
  stale_timestamp: "the signed timestamp is outside the replay window",
};

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

/**
 * A delivery as it arrives: its body is read once, bounded by `webhooks.body_limit_bytes` (413 as
 * soon as the declared or streamed size passes it, before the rest is read, with an audit entry),
 * then ingested.
 */
export async function receiveWebhook(
  deps: IngestDeps,
  input: Pick<IngestRequest, "targetKey" | "requestId" | "deadline"> & { raw: RawWebhookRequest },
): Promise<IngestResult> {
  const { targetKey, requestId, deadline, raw } = input;
  const rawBody = await raw.body(deps.bodyLimit).catch(async (error: unknown) => {
    if (!(error instanceof BodyTooLarge)) throw error;
    const refusal = new WebhookRefusal(
      "payload_too_large",
      "payload_too_large",
      `webhook bodies are limited to ${deps.bodyLimit} bytes`,
      "body_too_large",
    );
    await auditRefusal(deps, { targetKey, requestId }, refusal);
    throw refusal;
  });
  return ingestWebhook(deps, { targetKey, headers: raw.headers, rawBody, requestId, deadline });
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
    headers: input.headers,
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
  const stored = await deps.events.write(
    { target, headers: request.headers, rawBody: request.rawBody, event: parsed.event },
    input.deadline,
  );
  return { kind: "accepted", ...stored };
}
