import { setTimeout as sleep } from "node:timers/promises";
import type { KeyRing } from "@keyway/crypto";
import {
  type Database,
  type DatabaseHandle,
  integrationConnections,
  withTryAdvisoryLock,
} from "@keyway/db";
import {
  type Clock,
  type FetchLike,
  OAuth2Error,
  type OAuth2TokenSet,
} from "@keyway/integrations-core";
import { and, eq } from "drizzle-orm";
import { LRUCache } from "lru-cache";
import { appendAudit } from "../audit/service";
import { publishInvalidation } from "../events/invalidations";
import type { Logger } from "../logger";
import { dropCachedCredentials } from "./credential-cache";
import {
  type CurrentCredential,
  readCurrentCredential,
  tokenSetCredential,
  writeCredentialVersion,
} from "./secret-store";

/**
 * OAuth2 access tokens of connections (SPEC §6.3, §6.8): the stored token while it is fresh, a
 * refresh when it is not — once across every replica — and client-credentials tokens minted and
 * cached until shortly before they expire. Credential resolution, connection tests and the
 * worker's proactive refresh all go through here, so they share one single-flight.
 *
 * Single flight, in two layers: concurrent callers in one process share one attempt (a map of
 * promises); across processes a PostgreSQL advisory lock per connection (`oauth2-refresh:<id>`),
 * tried without waiting and held on a reserved connection outside any transaction, so the
 * provider call never runs under a row lock or an open transaction. The holder reads the
 * current version again once it has the lock (another replica may have refreshed in between)
 * and writes the new version, with the rotated refresh token, in one transaction.
 */

/** A token this close to its expiry is refreshed before it is handed out. */
export const REFRESH_WINDOW_MS = 60_000;
/** How long a caller that found another replica refreshing waits for its result. */
const FOLLOWER_WAIT_MS = 8_000;
/** After a temporary refresh failure, no new attempt for this long (doubling, capped). */
const BACKOFF_MIN_MS = 1_000;
const BACKOFF_MAX_MS = 60_000;

export interface OAuth2TokenDeps {
  database: DatabaseHandle;
  keyRing: KeyRing;
  clock: Clock;
  fetch: FetchLike;
  logger: Logger;
  /** Bound on one token endpoint call. */
  tokenRequestTimeoutMs: number;
}

/** Who asks, for audit entries of refreshes and failures. */
export interface TokenRequester {
  /**
   * Where the requester's writes go (a refresh's new version, marking the connection `error`):
   * a request's database, bound by its deadline (`DatabaseHandle.bound`), or the handle's `db`
   * for work outside any request (the worker's refresh job).
   */
  db: Database;
  actor: string;
  traceId?: string | null;
  details?: Record<string, unknown>;
}

export interface ConnectionRef {
  id: string;
  organizationId: string;
}

export interface IssuedAccessToken {
  value: string;
  expiresAt: Date | null;
  credentialVersion: number;
  /** `oauth2-token` (stored), `oauth2-refresh` (refreshed now) or `client-credentials`. */
  source: "oauth2-token" | "oauth2-refresh" | "client-credentials";
}

/** Exchanges a refresh token at the provider (`definition.oauth2.refresh` with its target). */
export type RefreshGrant = (refreshToken: string, fetch: FetchLike) => Promise<OAuth2TokenSet>;
/** Mints a client-credentials token (`definition.oauth2.clientCredentials` with its inputs). */
export type ClientCredentialsGrant = (fetch: FetchLike) => Promise<OAuth2TokenSet>;

export interface OAuth2Tokens {
  /**
   * The connection's access token, refreshed first when it expires within `minValidityMs`
   * (default `REFRESH_WINDOW_MS`). Throws `OAuth2Error`: `permanent` after the connection was
   * marked `error` (with an invalidation), `temporary` when no usable token could be had now.
   * A temporary failure while the stored token still works hands out the stored token.
   */
  accessToken(
    connection: ConnectionRef,
    refresh: RefreshGrant | undefined,
    requester: TokenRequester,
    options?: { minValidityMs?: number },
  ): Promise<IssuedAccessToken>;
  /** A client-credentials token for the credential version, from the cache when fresh. */
  clientCredentialsToken(
    connection: ConnectionRef & { credentialVersion: number },
    grant: ClientCredentialsGrant,
    requester: TokenRequester,
  ): Promise<IssuedAccessToken>;
  /**
   * Puts an active connection in `error` with the failure's message, in one transaction with its
   * audit entry and a `connection.updated` invalidation (gateways drop what they cached).
   */
  markConnectionError(
    connection: ConnectionRef,
    failure: OAuth2Error,
    requester: TokenRequester,
  ): Promise<void>;
}

export function createOAuth2Tokens(deps: OAuth2TokenDeps, maxCachedTokens = 10_000): OAuth2Tokens {
  const inFlight = new Map<string, Promise<IssuedAccessToken>>();
  const backoff = new Map<string, { until: number; delayMs: number }>();
  const minted = new LRUCache<string, { token: OAuth2TokenSet; version: number }>({
    max: maxCachedTokens,
  });
  const minting = new Map<string, Promise<OAuth2TokenSet>>();
  const fetchWithTimeout: FetchLike = (input, init) =>
    deps.fetch(input, { ...init, signal: AbortSignal.timeout(deps.tokenRequestTimeoutMs) });

  const stored = (current: CurrentCredential): IssuedAccessToken => ({
    value: accessTokenOf(current),
    expiresAt: tokenExpiry(current),
    credentialVersion: current.version,
    source: "oauth2-token",
  });

  async function markConnectionError(
    connection: ConnectionRef,
    failure: OAuth2Error,
    requester: TokenRequester,
  ) {
    const now = deps.clock.now();
    await requester.db.transaction(async (tx) => {
      const [updated] = await tx
        .update(integrationConnections)
        .set({ status: "error", lastError: failure.message.slice(0, 500), updatedAt: now })
        .where(
          and(
            eq(integrationConnections.id, connection.id),
            eq(integrationConnections.status, "active"),
          ),
        )
        .returning({ id: integrationConnections.id });
      if (!updated) return;
      await dropCachedCredentials(tx, connection.id);
      await publishInvalidation(tx, { type: "connection.updated", connectionId: connection.id });
      await appendAudit(tx, deps.clock, {
        organizationId: connection.organizationId,
        actor: requester.actor,
        action: "connection.error",
        subjectType: "connection",
        subjectId: connection.id,
        traceId: requester.traceId ?? null,
        details: { code: failure.code, ...requester.details },
      });
    });
  }

  /** Refreshes under the advisory lock; `acquired: false` when another process holds it. */
  async function refreshUnderLock(
    connection: ConnectionRef,
    seen: CurrentCredential,
    refresh: RefreshGrant,
    requester: TokenRequester,
    minValidityMs: number,
  ) {
    return withTryAdvisoryLock(deps.database.sql, `oauth2-refresh:${connection.id}`, async () => {
      const latest = await readCurrentCredential(deps.database.db, deps.keyRing, connection.id);
      if (latest?.credential.kind !== "oauth2-token-set") {
        throw new OAuth2Error("permanent", "no_token_set", "the connection holds no OAuth2 token");
      }
      if (latest.version !== seen.version && isFresh(latest, deps.clock.now(), minValidityMs)) {
        return stored(latest);
      }
      const refreshToken = latest.credential.refreshToken;
      if (refreshToken === undefined) throw noRefreshToken();
      const started = performance.now();
      const tokens = await refresh(refreshToken, fetchWithTimeout);
      const refreshMs = Math.round(performance.now() - started);
      const now = deps.clock.now();
      return requester.db.transaction(async (tx) => {
        // Providers that do not rotate refresh tokens omit one from the answer: keep the old one.
        const version = await writeCredentialVersion(tx, deps.keyRing, {
          connectionId: connection.id,
          organizationId: connection.organizationId,
          credential: tokenSetCredential({
            ...tokens,
            refreshToken: tokens.refreshToken ?? refreshToken,
          }),
          expiresAt: tokens.expiresAt ?? null,
          now,
        });
        await publishInvalidation(tx, {
          type: "credential.rotated",
          connectionId: connection.id,
          credentialVersion: version,
        });
        await appendAudit(tx, deps.clock, {
          organizationId: connection.organizationId,
          actor: requester.actor,
          action: "connection.credential_refreshed",
          subjectType: "connection",
          subjectId: connection.id,
          traceId: requester.traceId ?? null,
          details: {
            credentialVersion: version,
            refreshTokenRotated: tokens.refreshToken !== undefined,
            refreshMs,
            ...requester.details,
          },
        });
        const issued: IssuedAccessToken = {
          value: tokens.accessToken,
          expiresAt: tokens.expiresAt ?? null,
          credentialVersion: version,
          source: "oauth2-refresh",
        };
        return issued;
      });
    });
  }

  async function refreshOnce(
    connection: ConnectionRef,
    current: CurrentCredential,
    refresh: RefreshGrant,
    requester: TokenRequester,
    minValidityMs: number,
  ): Promise<IssuedAccessToken> {
    const waitUntil = performance.now() + FOLLOWER_WAIT_MS;
    let pause = 20;
    for (;;) {
      let attempt: Awaited<ReturnType<typeof refreshUnderLock>>;
      try {
        attempt = await refreshUnderLock(connection, current, refresh, requester, minValidityMs);
      } catch (error) {
        const failure =
          error instanceof OAuth2Error
            ? error
            : new OAuth2Error("temporary", "refresh_failed", "the token refresh failed");
        if (!(error instanceof OAuth2Error)) {
          deps.logger.warn("oauth2 refresh failed", {
            connectionId: connection.id,
            error: error instanceof Error ? error.name : "unknown",
          });
        }
        if (failure.kind === "permanent") {
          await markConnectionError(connection, failure, requester);
          throw failure;
        }
        const previous = backoff.get(connection.id);
        const delayMs = Math.min(BACKOFF_MAX_MS, previous ? previous.delayMs * 2 : BACKOFF_MIN_MS);
        backoff.set(connection.id, { until: Date.now() + delayMs, delayMs });
        if (isUsable(current, deps.clock.now())) return stored(current);
        throw failure;
      }
      if (attempt.acquired) {
        backoff.delete(connection.id);
        return attempt.value;
      }
      // Another replica is refreshing. A token that still works is handed out at once;
      // otherwise wait for the new version (or for the lock, should that replica give up).
      if (isUsable(current, deps.clock.now())) return stored(current);
      await sleep(pause);
      pause = Math.min(pause * 2, 100);
      const latest = await readCurrentCredential(deps.database.db, deps.keyRing, connection.id);
      if (latest && latest.version !== current.version && isUsable(latest, deps.clock.now())) {
        return stored(latest);
      }
      if (performance.now() > waitUntil) {
        throw new OAuth2Error(
          "temporary",
          "refresh_in_progress",
          "another replica is refreshing the token and has not finished",
        );
      }
    }
  }

  return {
    markConnectionError,

    async accessToken(connection, refresh, requester, options = {}) {
      const minValidityMs = options.minValidityMs ?? REFRESH_WINDOW_MS;
      const current = await readCurrentCredential(deps.database.db, deps.keyRing, connection.id);
      if (current?.credential.kind !== "oauth2-token-set") {
        throw new OAuth2Error("permanent", "no_token_set", "the connection holds no OAuth2 token");
      }
      const now = deps.clock.now();
      if (isFresh(current, now, minValidityMs)) return stored(current);
      if (current.credential.refreshToken === undefined || refresh === undefined) {
        // Still usable for a few seconds: hand it out rather than fail early.
        if (isUsable(current, now)) return stored(current);
        const failure = noRefreshToken();
        await markConnectionError(connection, failure, requester);
        throw failure;
      }
      const pause = backoff.get(connection.id);
      if (pause && pause.until > Date.now() && isUsable(current, now)) return stored(current);

      const key = `${connection.id}:${current.version}`;
      const pending = inFlight.get(key);
      if (pending) return pending;
      const attempt = refreshOnce(connection, current, refresh, requester, minValidityMs).finally(
        () => inFlight.delete(key),
      );
      inFlight.set(key, attempt);
      return attempt;
    },

    async clientCredentialsToken(connection, grant, requester) {
      const key = `${connection.id}:${connection.credentialVersion}`;
      const hit = minted.get(key);
      const now = deps.clock.now();
      if (hit && isTokenFresh(hit.token, now, REFRESH_WINDOW_MS)) {
        return issuedClientToken(hit.token, hit.version);
      }
      let pending = minting.get(key);
      if (!pending) {
        pending = grant(fetchWithTimeout).finally(() => minting.delete(key));
        minting.set(key, pending);
      }
      let token: OAuth2TokenSet;
      try {
        token = await pending;
      } catch (error) {
        if (error instanceof OAuth2Error && error.kind === "permanent") {
          await markConnectionError(connection, error, requester);
        }
        throw error;
      }
      // A token without a lifetime is not cached: nothing says when it stops working.
      if (token.expiresAt !== undefined) {
        minted.set(key, { token, version: connection.credentialVersion });
      }
      return issuedClientToken(token, connection.credentialVersion);
    },
  };
}

function issuedClientToken(token: OAuth2TokenSet, version: number): IssuedAccessToken {
  return {
    value: token.accessToken,
    expiresAt: token.expiresAt ?? null,
    credentialVersion: version,
    source: "client-credentials",
  };
}

function noRefreshToken(): OAuth2Error {
  return new OAuth2Error(
    "permanent",
    "no_refresh_token",
    "the access token has expired and the connection holds no refresh token",
  );
}

/** When the stored access token stops working; null when the provider gave no lifetime. */
export function tokenExpiry(current: CurrentCredential): Date | null {
  if (current.expiresAt) return current.expiresAt;
  if (current.credential.kind === "oauth2-token-set" && current.credential.expiresAt) {
    const parsed = new Date(current.credential.expiresAt);
    return Number.isNaN(parsed.getTime()) ? null : parsed;
  }
  return null;
}

function isFresh(current: CurrentCredential, now: Date, minValidityMs: number): boolean {
  const expiresAt = tokenExpiry(current);
  return expiresAt === null || expiresAt.getTime() - now.getTime() > minValidityMs;
}

function isUsable(current: CurrentCredential, now: Date): boolean {
  const expiresAt = tokenExpiry(current);
  return expiresAt === null || expiresAt.getTime() > now.getTime();
}

function isTokenFresh(token: OAuth2TokenSet, now: Date, windowMs: number): boolean {
  return token.expiresAt !== undefined && token.expiresAt.getTime() - now.getTime() > windowMs;
}

function accessTokenOf(current: CurrentCredential): string {
  if (current.credential.kind !== "oauth2-token-set") throw new Error("not a token set");
  return current.credential.accessToken;
}
