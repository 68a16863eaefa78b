import type { SessionTokenSigner } from "@keyway/crypto";
import {
  type Database,
  type DatabaseHandle,
  type Executor,
  newId,
  profileVersions,
  sandboxProfiles,
  sandboxSessions,
} from "@keyway/db";
import {
  type Clock,
  type EgressRoute,
  type IntegrationRegistry,
  sandboxNoProxy,
} from "@keyway/integrations-core";
import { and, desc, eq, lt } from "drizzle-orm";
import { appendAudit } from "../audit/service";
import type { OrganizationPrincipal } from "../auth/principal";
import type { AppSettings } from "../deps";
import { conflict, notFound, unprocessable } from "../errors";
import { publishInvalidation } from "../events/invalidations";
import { compileStoredVersion, loadPlan } from "../profiles/service";

/**
 * Sandbox sessions (SPEC §2, §6.2, §9): one sandbox attached to one compiled plan, known to the
 * gateway by a signed token. The token a session starts with is the sandbox's proxy credential and
 * lives as long as the session (running agents cannot reload their environment); gateways refuse
 * it once the session is revoked (`session.revoked` events and liveness checks,
 * `internal/routes.ts`). `refresh` hands out short tokens (`sessions.token_ttl_seconds`) to API
 * clients that want them. Tokens are returned once and never again; the session's hard end
 * (`expires_at`) caps every token.
 */

type SessionRow = typeof sandboxSessions.$inferSelect;

export interface SessionDeps {
  db: Database;
  clock: Clock;
  registry: IntegrationRegistry;
  sessionSigner: SessionTokenSigner;
  settings: Pick<
    AppSettings,
    "gatewayProxyUrl" | "gatewayCaPem" | "sessionTokenTtlSeconds" | "sessionMaxLifetimeSeconds"
  >;
}

/**
 * Variables a sandbox sets to the path where it wrote the gateway CA PEM (SPEC §9). The API does
 * not pick that path: the sandbox side (CLI, container runtime) writes `caCertPem` where it
 * likes and points each of these at it.
 */
export const CA_BUNDLE_ENV_VARS = [
  "SSL_CERT_FILE",
  "NODE_EXTRA_CA_CERTS",
  "REQUESTS_CA_BUNDLE",
  "CURL_CA_BUNDLE",
  "GIT_SSL_CAINFO",
] as const;

/**
 * Proxy variables for a sandbox (SPEC §7, §9): the gateway URL with `session` as user name and
 * the token as password (percent-encoded, though a JWT's alphabet needs none), in both the upper-
 * and lower-case spellings because tools disagree on which they read. NO_PROXY keeps loopback
 * direct for local dev servers, except the loopback names a route of the plan needs
 * (`sandboxNoProxy`).
 */
export function sandboxProxyEnv(
  proxyUrl: string,
  token: string,
  routes: readonly Pick<EgressRoute, "match">[],
): Record<string, string> {
  const url = new URL(proxyUrl);
  const withToken = `${url.protocol}//session:${encodeURIComponent(token)}@${url.host}`;
  const NO_PROXY = sandboxNoProxy(routes).join(",");
  return {
    HTTP_PROXY: withToken,
    HTTPS_PROXY: withToken,
    http_proxy: withToken,
    https_proxy: withToken,
    NO_PROXY,
    no_proxy: NO_PROXY,
  };
}

export type SessionStatus = "active" | "revoked" | "expired";

export function sessionStatus(row: SessionRow, now: Date): SessionStatus {
  if (row.revokedAt) return "revoked";
  return row.expiresAt.getTime() <= now.getTime() ? "expired" : "active";
}

function toSession(row: SessionRow, profileVersion: number, now: Date) {
  return {
    id: row.id,
    profileId: row.profileId,
    profileVersionId: row.profileVersionId,
    profileVersion,
    planDigest: row.planDigest,
    status: sessionStatus(row, now),
    tokenExpiresAt: row.tokenExpiresAt.toISOString(),
    expiresAt: row.expiresAt.toISOString(),
    revokedAt: row.revokedAt?.toISOString() ?? null,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
  };
}

const earlier = (a: Date, b: Date) => (a.getTime() <= b.getTime() ? a : b);

/**
 * Starts a session on a profile version (default: the latest). The version is compiled against
 * the current connections and targets, as `GET .../plan` does, so a session never starts on a
 * plan that would no longer compile (422 with the compile codes). Profile and version are body
 * references, so an unknown one, or one of another organization, is a 422 `profile_not_found` /
 * `profile_version_not_found` (like a binding's unknown connection), not a 404.
 */
export async function startSession(
  deps: SessionDeps,
  principal: OrganizationPrincipal,
  input: { profileId: string; version?: number | undefined },
) {
  return deps.db.transaction(async (tx) => {
    // FOR SHARE: a concurrent profile delete waits for this session to commit, then sees it live.
    const [profile] = await tx
      .select()
      .from(sandboxProfiles)
      .where(
        and(
          eq(sandboxProfiles.id, input.profileId),
          eq(sandboxProfiles.organizationId, principal.organizationId),
        ),
      )
      .for("share");
    if (!profile) {
      throw unprocessable("profile_not_found", `sandbox profile ${input.profileId} not found`);
    }
    const number = input.version ?? profile.latestVersion;
    if (number === 0) {
      throw unprocessable(
        "profile_has_no_versions",
        `sandbox profile ${profile.id} has no versions yet; create one first`,
      );
    }
    const [version] = await tx
      .select()
      .from(profileVersions)
      .where(
        and(
          eq(profileVersions.profileId, profile.id),
          eq(profileVersions.organizationId, principal.organizationId),
          eq(profileVersions.version, number),
        ),
      );
    if (!version) {
      throw unprocessable(
        "profile_version_not_found",
        `sandbox profile ${profile.id} has no version ${number}`,
      );
    }
    const compiled = await compileStoredVersion(tx, deps.registry, version);

    const now = deps.clock.now();
    const expiresAt = new Date(now.getTime() + deps.settings.sessionMaxLifetimeSeconds * 1000);
    // The proxy credential in `proxyEnv`: valid until the session ends or is revoked.
    const tokenExpiresAt = expiresAt;
    const row: SessionRow = {
      id: newId("session", now),
      organizationId: principal.organizationId,
      profileId: profile.id,
      profileVersionId: version.id,
      planDigest: compiled.digest,
      tokenExpiresAt,
      expiresAt,
      revokedAt: null,
      createdBy: principal.actor,
      createdAt: now,
    };
    const token = await deps.sessionSigner.sign({
      sessionId: row.id,
      organizationId: row.organizationId,
      planDigest: row.planDigest,
      profileVersionId: row.profileVersionId,
      expiresAt: tokenExpiresAt,
    });
    await tx.insert(sandboxSessions).values(row);
    await appendAudit(tx, deps.clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "session.started",
      subjectType: "sandbox_session",
      subjectId: row.id,
      details: {
        profileId: profile.id,
        profileVersionId: version.id,
        version: version.version,
        planDigest: compiled.digest,
        expiresAt: expiresAt.toISOString(),
      },
    });

    const plan = compiled.plan;
    return {
      id: row.id,
      token,
      tokenExpiresAt: tokenExpiresAt.toISOString(),
      expiresAt: expiresAt.toISOString(),
      planDigest: compiled.digest,
      profileId: profile.id,
      profileVersionId: version.id,
      profileVersion: version.version,
      proxyUrl: deps.settings.gatewayProxyUrl,
      proxyEnv: sandboxProxyEnv(deps.settings.gatewayProxyUrl, token, compiled.plan.routes),
      caCertPem: deps.settings.gatewayCaPem,
      caEnvVars: [...CA_BUNDLE_ENV_VARS],
      files: plan.files,
      env: plan.env,
      processes: plan.processes,
      workspaceSources: plan.workspaceSources,
      agentRuntimes: plan.agentRuntimes,
    };
  });
}

async function lockSession(tx: Executor, organizationId: string, id: string): Promise<SessionRow> {
  const [row] = await tx
    .select()
    .from(sandboxSessions)
    .where(and(eq(sandboxSessions.id, id), eq(sandboxSessions.organizationId, organizationId)))
    .for("update");
  if (!row) throw notFound("sandbox session");
  return row;
}

/**
 * A new token for a live session, expiring after the token TTL or at the session's end,
 * whichever comes first. 409 `session_revoked` / `session_expired` otherwise.
 */
export async function refreshSession(
  deps: SessionDeps,
  principal: OrganizationPrincipal,
  id: string,
) {
  return deps.db.transaction(async (tx) => {
    const row = await lockSession(tx, principal.organizationId, id);
    const now = deps.clock.now();
    if (row.revokedAt) throw conflict("session_revoked", "the session was revoked");
    // JWT expiry has one-second resolution: less than a second left cannot carry a valid token.
    if (row.expiresAt.getTime() - now.getTime() < 1000) {
      throw conflict("session_expired", "the session has reached its maximum lifetime");
    }
    const tokenExpiresAt = earlier(
      new Date(now.getTime() + deps.settings.sessionTokenTtlSeconds * 1000),
      row.expiresAt,
    );
    const token = await deps.sessionSigner.sign({
      sessionId: row.id,
      organizationId: row.organizationId,
      planDigest: row.planDigest,
      profileVersionId: row.profileVersionId,
      expiresAt: tokenExpiresAt,
    });
    await tx.update(sandboxSessions).set({ tokenExpiresAt }).where(eq(sandboxSessions.id, row.id));
    // A session's plan is stored when the session starts and plans are never deleted.
    const routes = (await loadPlan(tx, row.planDigest))?.routes ?? [];
    await appendAudit(tx, deps.clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "session.token_refreshed",
      subjectType: "sandbox_session",
      subjectId: row.id,
      details: { tokenExpiresAt: tokenExpiresAt.toISOString() },
    });
    return {
      id: row.id,
      token,
      tokenExpiresAt: tokenExpiresAt.toISOString(),
      expiresAt: row.expiresAt.toISOString(),
      planDigest: row.planDigest,
      proxyUrl: deps.settings.gatewayProxyUrl,
      proxyEnv: sandboxProxyEnv(deps.settings.gatewayProxyUrl, token, routes),
    };
  });
}

/**
 * Revokes a session at once: gateways learn it from the `session.revoked` invalidation, which
 * is published in the same transaction (delivered only if the revocation commits). Revoking a
 * revoked session changes nothing and succeeds.
 */
export async function revokeSession(
  db: Database,
  clock: Clock,
  principal: OrganizationPrincipal,
  id: string,
): Promise<void> {
  await db.transaction(async (tx) => {
    const row = await lockSession(tx, principal.organizationId, id);
    if (row.revokedAt) return;
    await tx
      .update(sandboxSessions)
      .set({ revokedAt: clock.now() })
      .where(eq(sandboxSessions.id, row.id));
    await publishInvalidation(tx, {
      type: "session.revoked",
      sessionId: row.id,
      expiresAt: row.expiresAt.toISOString(),
    });
    await appendAudit(tx, clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "session.revoked",
      subjectType: "sandbox_session",
      subjectId: row.id,
      details: { profileId: row.profileId, planDigest: row.planDigest },
    });
  });
}

export async function getSession(db: Database, clock: Clock, organizationId: string, id: string) {
  const [row] = await db
    .select({ session: sandboxSessions, version: profileVersions.version })
    .from(sandboxSessions)
    .innerJoin(profileVersions, eq(profileVersions.id, sandboxSessions.profileVersionId))
    .where(and(eq(sandboxSessions.id, id), eq(sandboxSessions.organizationId, organizationId)));
  if (!row) throw notFound("sandbox session");
  return toSession(row.session, row.version, clock.now());
}

/** Newest first, in pages: `nextCursor` is the `before` of the next page, null on the last. */
export async function listSessions(
  db: Database,
  clock: Clock,
  organizationId: string,
  options: { profileId?: string | undefined; limit: number; before?: string | undefined },
) {
  const rows = await db
    .select({ session: sandboxSessions, version: profileVersions.version })
    .from(sandboxSessions)
    .innerJoin(profileVersions, eq(profileVersions.id, sandboxSessions.profileVersionId))
    .where(
      and(
        eq(sandboxSessions.organizationId, organizationId),
        options.profileId !== undefined
          ? eq(sandboxSessions.profileId, options.profileId)
          : undefined,
        options.before !== undefined ? lt(sandboxSessions.id, options.before) : undefined,
      ),
    )
    .orderBy(desc(sandboxSessions.id))
    .limit(options.limit + 1);
  const now = clock.now();
  const page = rows.slice(0, options.limit);
  return {
    items: page.map((r) => toSession(r.session, r.version, now)),
    nextCursor: rows.length > options.limit ? (page.at(-1)?.session.id ?? null) : null,
  };
}

/**
 * Liveness of sessions for gateways (`POST /internal/v1/sessions/liveness`): live means neither
 * revoked nor past the hard end. Unknown ids are not live. `expiresAt` (the hard end, null for an
 * unknown id) tells a gateway how long to remember the answer.
 */
export async function sessionLiveness(
  sql: DatabaseHandle["sql"],
  clock: Clock,
  sessionIds: readonly string[],
): Promise<Array<{ sessionId: string; live: boolean; expiresAt: string | null }>> {
  // A prepared statement with the ids as one JSON parameter (one text whatever their number):
  // gateways ask on every new session's first use, so a sandbox storm asks hundreds of times.
  // Instants as epoch milliseconds: the drizzle client leaves timestamps as text.
  const found = await sql<{ id: string; revoked: boolean; expires_at_ms: number }[]>`
    select id, revoked_at is not null as revoked,
      floor(extract(epoch from expires_at) * 1000)::float8 as expires_at_ms
    from sandbox_sessions
    where id in (select jsonb_array_elements_text(${JSON.stringify(sessionIds)}::jsonb))`;
  const byId = new Map(found.map((row) => [row.id, row]));
  const nowMs = clock.now().getTime();
  return sessionIds.map((sessionId) => {
    const row = byId.get(sessionId);
    if (row === undefined) return { sessionId, live: false, expiresAt: null };
    return {
      sessionId,
      live: !row.revoked && row.expires_at_ms > nowMs,
      expiresAt: new Date(row.expires_at_ms).toISOString(),
    };
  });
}

/**
 * The session row when it is live (neither revoked nor past its hard end), else undefined. For the
 * internal API: credential resolution serves only live sessions. Not organization-scoped: the
 * caller is a gateway, and the session's own row says which organization it belongs to.
 */
export async function loadLiveSession(
  executor: Executor,
  sessionId: string,
  clock: Clock,
): Promise<SessionRow | undefined> {
  const [row] = await executor
    .select()
    .from(sandboxSessions)
    .where(eq(sandboxSessions.id, sessionId));
  if (!row || sessionStatus(row, clock.now()) !== "active") return undefined;
  return row;
}
