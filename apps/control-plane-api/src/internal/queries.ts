import {
  compiledPlans,
  type Executor,
  integrationConnections,
  integrationTargets,
  profileBindings,
  sandboxSessions,
} from "@keyway/db";
import { and, eq } from "drizzle-orm";

/**
 * The internal API's own reads. Resolution is on every gateway cache miss, so each query selects
 * only the columns it needs and the route's connection, target and binding come back in one
 * round trip.
 */

export async function selectSession(db: Executor, sessionId: string) {
  const [row] = await db
    .select({
      id: sandboxSessions.id,
      organizationId: sandboxSessions.organizationId,
      profileVersionId: sandboxSessions.profileVersionId,
      planDigest: sandboxSessions.planDigest,
      expiresAt: sandboxSessions.expiresAt,
      revokedAt: sandboxSessions.revokedAt,
    })
    .from(sandboxSessions)
    .where(eq(sandboxSessions.id, sessionId))
    .limit(1);
  return row;
}

export type SessionRow = NonNullable<Awaited<ReturnType<typeof selectSession>>>;

export async function selectPlanJson(db: Executor, digest: string): Promise<unknown> {
  const [row] = await db
    .select({ plan: compiledPlans.plan })
    .from(compiledPlans)
    .where(eq(compiledPlans.digest, digest))
    .limit(1);
  return row?.plan;
}

/**
 * The connection a route names, its target and the route's binding. The binding is joined on the
 * session's profile version as well, so a plan can only ever reach its own bindings' config.
 */
export async function selectRouteConnection(
  db: Executor,
  ids: { connectionId: string; bindingId: string; profileVersionId: string },
) {
  const [row] = await db
    .select({
      connection: {
        id: integrationConnections.id,
        organizationId: integrationConnections.organizationId,
        methodId: integrationConnections.methodId,
        methodKind: integrationConnections.methodKind,
        status: integrationConnections.status,
        config: integrationConnections.config,
        externalSubjectId: integrationConnections.externalSubjectId,
        credentialVersion: integrationConnections.credentialVersion,
      },
      target: {
        id: integrationTargets.id,
        targetKey: integrationTargets.targetKey,
        variantId: integrationTargets.variantId,
        enabled: integrationTargets.enabled,
        config: integrationTargets.config,
        secretsCiphertext: integrationTargets.secretsCiphertext,
      },
      bindingConfig: profileBindings.config,
    })
    .from(integrationConnections)
    .innerJoin(integrationTargets, eq(integrationTargets.id, integrationConnections.targetId))
    .leftJoin(
      profileBindings,
      and(
        eq(profileBindings.id, ids.bindingId),
        eq(profileBindings.profileVersionId, ids.profileVersionId),
      ),
    )
    .where(eq(integrationConnections.id, ids.connectionId))
    .limit(1);
  return row;
}

export type RouteConnectionRow = NonNullable<Awaited<ReturnType<typeof selectRouteConnection>>>;
