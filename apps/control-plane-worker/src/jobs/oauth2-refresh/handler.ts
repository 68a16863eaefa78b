import type { OAuth2Tokens } from "@keyway/control-plane-api/credentials/oauth2-tokens";
import { errorLogFields } from "@keyway/control-plane-api/logger";
import { loadTargetForUse } from "@keyway/control-plane-api/targets/service";
import { connectionCredentials, integrationConnections } from "@keyway/db";
import { OAuth2Error } from "@keyway/integrations-core";
import { and, asc, eq, isNotNull, isNull, lt } from "drizzle-orm";
import type { WorkerDeps } from "../../deps";

/** The `oauth2.*` settings (packages/config). */
export interface OAuth2RefreshSettings {
  /** Tokens expiring within this are refreshed by the job. */
  proactiveRefreshWindowSeconds: number;
  /** Bound on one token endpoint call. */
  tokenRequestTimeoutMs: number;
}

export type OAuth2RefreshDeps = Pick<
  WorkerDeps,
  "database" | "registry" | "keyRing" | "clock" | "logger"
> & { tokens: OAuth2Tokens; settings: { oauth2: OAuth2RefreshSettings } };

/** Connections one run looks at; the rest wait a minute for the next run. */
const BATCH_SIZE = 200;

export interface RefreshRun {
  /** Connections whose token expired within the window. */
  due: number;
  refreshed: number;
  /** Permanent failures: the connection is now `error`. */
  failed: number;
  /** Temporary failures: tried again by the next run (or by resolution). */
  deferred: number;
}

/**
 * Refreshes every active authorization-code connection whose access token expires within the
 * window (SPEC §6.3: sandboxes never wait on a provider), soonest first. Each refresh goes
 * through the same single-flight as credential resolution (`OAuth2Tokens.accessToken` with the
 * window as the minimum validity): the per-connection advisory lock, a re-read of the current
 * version under it, the new version with its rotated refresh token in one transaction; a
 * permanent failure marks the connection `error` with an invalidation. Running twice, or beside
 * a resolution on another replica, refreshes once.
 */
export async function refreshExpiringTokens(deps: OAuth2RefreshDeps): Promise<RefreshRun> {
  const windowMs = deps.settings.oauth2.proactiveRefreshWindowSeconds * 1000;
  const horizon = new Date(deps.clock.now().getTime() + windowMs);
  const due = await deps.database.db
    .select({
      id: integrationConnections.id,
      organizationId: integrationConnections.organizationId,
      targetId: integrationConnections.targetId,
    })
    .from(integrationConnections)
    .innerJoin(
      connectionCredentials,
      and(
        eq(connectionCredentials.connectionId, integrationConnections.id),
        isNull(connectionCredentials.supersededAt),
      ),
    )
    .where(
      and(
        eq(integrationConnections.status, "active"),
        eq(integrationConnections.methodKind, "oauth2-authorization-code"),
        eq(connectionCredentials.kind, "oauth2-token-set"),
        isNotNull(connectionCredentials.expiresAt),
        lt(connectionCredentials.expiresAt, horizon),
      ),
    )
    .orderBy(asc(connectionCredentials.expiresAt))
    .limit(BATCH_SIZE);

  const run: RefreshRun = { due: due.length, refreshed: 0, failed: 0, deferred: 0 };
  for (const connection of due) {
    try {
      const target = await loadTargetForUse(deps.database.db, deps, { id: connection.targetId });
      const oauth2 = target.definition.oauth2;
      if (!oauth2) continue;
      const view = { ...target.view, secrets: target.secrets() };
      const issued = await deps.tokens.accessToken(
        connection,
        (refreshToken, fetch) =>
          oauth2.refresh({ target: view, refreshToken, fetch, clock: deps.clock }),
        { db: deps.database.db, actor: "worker:oauth2-refresh" },
        { minValidityMs: windowMs },
      );
      if (issued.source === "oauth2-refresh") run.refreshed++;
      else run.deferred++;
    } catch (error) {
      if (error instanceof OAuth2Error && error.kind === "permanent") run.failed++;
      else run.deferred++;
      deps.logger.warn("proactive oauth2 refresh failed", {
        connectionId: connection.id,
        ...(error instanceof OAuth2Error
          ? { kind: error.kind, code: error.code }
          : errorLogFields(error)),
      });
    }
  }
  if (run.due > 0) deps.logger.info("proactive oauth2 refresh", { ...run });
  return run;
}
