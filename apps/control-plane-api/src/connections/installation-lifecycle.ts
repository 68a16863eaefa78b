import {
  connectionCredentials,
  type Executor,
  integrationConnections,
  integrationTargets,
} from "@keyway/db";
import type { Clock, IntegrationRegistry } from "@keyway/integrations-core";
import { eq } from "drizzle-orm";
import { appendAudit } from "../audit/service";
import { dropCachedCredentials } from "../credentials/credential-cache";
import { publishInvalidation } from "../events/invalidations";

/** A stored webhook event, as far as the lifecycle of its connection is concerned. */
export interface LifecycleEvent {
  id: string;
  eventType: string;
  connectionId: string | null;
  /** The installation the event names (`installation.id` for GitHub). */
  externalSubjectId: string | null;
}

export type InstallationLifecycle = "deleted" | "suspended" | "restored" | "changed";

/**
 * What an app installation's own webhook events do to the connection they were resolved to
 * (SPEC §5 github; the definition's `appInstallation.lifecycleOf` names the events):
 *
 * - `deleted` (GitHub `installation.deleted`): the installation is gone for good, so the
 *   connection is revoked (a reinstall is a new installation and a new connection);
 * - `suspended` (`installation.suspend`): an active connection goes to `error` until restored;
 * - `restored` (`installation.unsuspend`): a connection in `error` is `active` again (if it
 *   still fails, the next resolution says so);
 * - `changed` (new permissions accepted, repositories added or removed): nothing to mark, but
 *   tokens minted before no longer match what the installation grants.
 *
 * Each drops the connection's cached tokens and tells gateways, in the caller's transaction (the
 * worker's processing of the event), so the change, its audit entry and the invalidation commit
 * together. A connection already in the resulting state is left alone (redeliveries, replays).
 * Returns what the event meant, or undefined when it is not such an event.
 */
export async function applyInstallationLifecycle(
  tx: Executor,
  deps: { registry: IntegrationRegistry; clock: Clock },
  event: LifecycleEvent,
): Promise<InstallationLifecycle | undefined> {
  if (event.connectionId === null) return undefined;
  // Most events (pushes, issues, …) are no definition's lifecycle event: no need to read, let
  // alone lock, their connection (every event of an installation would queue on its row).
  const anyLifecycle = deps.registry
    .list()
    .some((definition) => definition.appInstallation?.lifecycleOf(event.eventType) !== undefined);
  if (!anyLifecycle) return undefined;
  const [row] = await tx
    .select({ connection: integrationConnections, variantId: integrationTargets.variantId })
    .from(integrationConnections)
    .innerJoin(integrationTargets, eq(integrationTargets.id, integrationConnections.targetId))
    .where(eq(integrationConnections.id, event.connectionId))
    .for("update", { of: integrationConnections });
  if (row === undefined) return undefined;
  const lifecycle = deps.registry.get(row.variantId)?.appInstallation?.lifecycleOf(event.eventType);
  const { connection } = row;
  // Only the installation connection the event is about (ingest resolved it by installation id).
  if (
    lifecycle === undefined ||
    connection.methodKind !== "github-app-installation" ||
    connection.externalSubjectId === null ||
    connection.externalSubjectId !== event.externalSubjectId ||
    connection.status === "revoked"
  ) {
    return undefined;
  }

  const now = deps.clock.now();
  const audit = (action: string, details: Record<string, unknown>) =>
    appendAudit(tx, deps.clock, {
      organizationId: connection.organizationId,
      actor: "provider",
      action,
      subjectType: "connection",
      subjectId: connection.id,
      details: { eventId: event.id, eventType: event.eventType, ...details },
    });
  const mark = (status: "active" | "error" | "revoked", lastError: string | null) =>
    tx
      .update(integrationConnections)
      .set({ status, lastError, updatedAt: now })
      .where(eq(integrationConnections.id, connection.id));

  await dropCachedCredentials(tx, connection.id);
  if (lifecycle === "deleted") {
    await mark("revoked", "the GitHub App installation was deleted on GitHub");
    await tx
      .delete(connectionCredentials)
      .where(eq(connectionCredentials.connectionId, connection.id));
    await audit("connection.revoked", {
      reason: "installation_deleted",
      previousStatus: connection.status,
    });
    await publishInvalidation(tx, { type: "connection.revoked", connectionId: connection.id });
    return lifecycle;
  }
  if (lifecycle === "suspended" && connection.status === "active") {
    await mark(
      "error",
      "the GitHub App installation is suspended on GitHub; it works again once unsuspended",
    );
    await audit("connection.error", { reason: "installation_suspended" });
  } else if (lifecycle === "restored" && connection.status === "error") {
    await mark("active", null);
    await audit("connection.restored", { reason: "installation_unsuspended" });
  }
  await publishInvalidation(tx, { type: "connection.updated", connectionId: connection.id });
  return lifecycle;
}
