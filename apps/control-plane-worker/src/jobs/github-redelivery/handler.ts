import { errorLogFields } from "@keyway/control-plane-api/logger";
import { loadTargetForUse } from "@keyway/control-plane-api/targets/service";
import { integrationTargets, webhookEvents, webhookRedeliveries } from "@keyway/db";
import { OAuth2Error } from "@keyway/integrations-core";
import {
  githubAppWebhookTarget,
  listAppWebhookDeliveries,
  redeliverAppWebhookDelivery,
  unansweredDeliveries,
} from "@keyway/integrations-definitions";
import { and, asc, eq, inArray, isNotNull } from "drizzle-orm";
import type { WorkerDeps } from "../../deps";

/** The `webhooks.github_redelivery_*` settings (packages/config). */
export interface GitHubRedeliverySettings {
  /** How far back deliveries are listed; inside GitHub's 3 days and the dedupe retention. */
  lookbackHours: number;
  /** Listing pages (100 deliveries each) read per app per run. */
  maxPages: number;
  /** Redeliveries asked for per app per run. */
  maxPerRun: number;
}

export type GitHubRedeliveryDeps = Pick<
  WorkerDeps,
  "database" | "registry" | "keyRing" | "clock" | "logger" | "fetch"
> & { settings: { githubRedelivery: GitHubRedeliverySettings } };

type GitHubAppTarget = NonNullable<ReturnType<typeof githubAppWebhookTarget>>;

export interface TargetReconciliation {
  targetKey: string;
  /** Deliveries listed inside the look-back window. */
  listed: number;
  /** Events no delivery of which was answered, never stored and never asked for before. */
  missing: number;
  /** Redeliveries GitHub accepted this run. */
  requested: number;
  /** The listing stopped at `maxPages` before the window's start. */
  truncated: boolean;
}

/**
 * GitHub refuses these for the one delivery (too old, unknown, malformed id): recorded, so the
 * delivery is not asked for again. Any other failure (401 app credentials, 5xx, network) is the
 * target's: its run stops and the next run tries again.
 */
const DELIVERY_REFUSALS = new Set([400, 404, 410, 422]);

/**
 * GitHub never retries a failed webhook delivery (SPEC §8). For each enabled GitHub target whose
 * app Keyway can authenticate as and whose webhook it verifies, this job lists the app's
 * deliveries of the last `lookbackHours` and asks GitHub to redeliver each event that
 * - got no answer or only 5xx answers (Keyway was down or failing; a 2xx or 4xx was an answer:
 *   see `unansweredDeliveries`),
 * - is not stored (`webhook_events` of the target with `external_delivery_id` = the guid: the
 *   stored events are the truth; the window is shorter than the dedupe retention, so a stored
 *   event is still there), and
 * - was never asked for (`webhook_redeliveries`, unique per target and guid),
 * oldest first, at most `maxPerRun` per target. Each request is recorded after GitHub answers:
 * a crash between the two asks again on the next run (the redelivery then arrives twice, and
 * ingest dedupes it); a request recorded before the call could be lost for good by a crash.
 * An event is asked for once: if its redelivery fails too, it is not asked again (an operator
 * can still redeliver from the app's settings page).
 *
 * A target's failure (GitHub refusing the app JWT, GitHub down) is logged and the next target
 * runs; the job itself completes. The queue's `singleton` policy keeps runs from overlapping.
 */
export async function reconcileGitHubDeliveries(
  deps: GitHubRedeliveryDeps,
): Promise<TargetReconciliation[]> {
  const candidates = await deps.database.db
    .select({ id: integrationTargets.id, targetKey: integrationTargets.targetKey })
    .from(integrationTargets)
    .where(
      and(
        eq(integrationTargets.enabled, true),
        eq(integrationTargets.familyId, "github"),
        isNotNull(integrationTargets.secretsCiphertext),
      ),
    )
    .orderBy(asc(integrationTargets.targetKey));

  const results: TargetReconciliation[] = [];
  for (const candidate of candidates) {
    try {
      const target = await loadAppTarget(deps, candidate.id);
      if (target === undefined) continue;
      const result = await reconcileTarget(deps, target);
      results.push(result);
      if (result.missing > 0 || result.truncated) {
        deps.logger.info("asked GitHub to redeliver missed webhook deliveries", { ...result });
      }
    } catch (error) {
      deps.logger.warn("GitHub webhook redelivery failed for a target", {
        targetKey: candidate.targetKey,
        ...errorLogFields(error),
      });
    }
  }
  return results;
}

async function loadAppTarget(
  deps: GitHubRedeliveryDeps,
  targetId: string,
): Promise<GitHubAppTarget | undefined> {
  const usable = await loadTargetForUse(deps.database.db, deps, { id: targetId });
  return githubAppWebhookTarget({
    id: usable.row.id,
    targetKey: usable.row.targetKey,
    familyId: usable.definition.familyId,
    config: usable.config,
    secrets: usable.secrets(),
  });
}

async function reconcileTarget(
  deps: GitHubRedeliveryDeps,
  target: GitHubAppTarget,
): Promise<TargetReconciliation> {
  const { lookbackHours, maxPages, maxPerRun } = deps.settings.githubRedelivery;
  const since = new Date(deps.clock.now().getTime() - lookbackHours * 3_600_000);
  const listing = await listAppWebhookDeliveries({
    target,
    since,
    maxPages,
    fetch: deps.fetch,
    clock: deps.clock,
  });
  const unanswered = unansweredDeliveries(listing.deliveries);
  const missing = await withoutKnownEvents(deps, target.id, unanswered);

  let requested = 0;
  for (const delivery of missing.slice(0, maxPerRun)) {
    let status: number;
    try {
      status = await redeliverAppWebhookDelivery({
        target,
        deliveryId: delivery.id,
        fetch: deps.fetch,
        clock: deps.clock,
      });
      requested++;
    } catch (error) {
      if (!(error instanceof OAuth2Error) || !DELIVERY_REFUSALS.has(error.status ?? 0)) {
        throw error;
      }
      status = error.status ?? 0;
      deps.logger.warn("GitHub refused to redeliver a webhook delivery", {
        targetKey: target.targetKey,
        deliveryId: delivery.id,
        guid: delivery.guid,
        status,
      });
    }
    await deps.database.db
      .insert(webhookRedeliveries)
      .values({
        targetId: target.id,
        externalDeliveryId: delivery.guid,
        providerDeliveryId: delivery.id,
        requestedAt: deps.clock.now(),
        responseStatus: status,
      })
      .onConflictDoNothing();
  }
  return {
    targetKey: target.targetKey,
    listed: listing.deliveries.length,
    missing: missing.length,
    requested,
    truncated: listing.truncated,
  };
}

/** The deliveries whose event the target neither stored nor asked GitHub for already. */
async function withoutKnownEvents<D extends { guid: string }>(
  deps: GitHubRedeliveryDeps,
  targetId: string,
  deliveries: readonly D[],
): Promise<D[]> {
  if (deliveries.length === 0) return [];
  const guids = deliveries.map((delivery) => delivery.guid);
  const { db } = deps.database;
  const [stored, asked] = await Promise.all([
    db
      .select({ guid: webhookEvents.externalDeliveryId })
      .from(webhookEvents)
      .where(
        and(eq(webhookEvents.targetId, targetId), inArray(webhookEvents.externalDeliveryId, guids)),
      ),
    db
      .select({ guid: webhookRedeliveries.externalDeliveryId })
      .from(webhookRedeliveries)
      .where(
        and(
          eq(webhookRedeliveries.targetId, targetId),
          inArray(webhookRedeliveries.externalDeliveryId, guids),
        ),
      ),
  ]);
  const known = new Set([...stored, ...asked].map((row) => row.guid));
  return deliveries.filter((delivery) => !known.has(delivery.guid));
}
