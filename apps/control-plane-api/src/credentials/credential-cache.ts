import type { KeyRing } from "@keyway/crypto";
import { cachedCredentials, type Database, type Executor, newId } from "@keyway/db";
import {
  type Clock,
  canonicalDigest,
  type JsonValue,
  type ResolvedCredential,
} from "@keyway/integrations-core";
import { and, eq, sql } from "drizzle-orm";
import { decryptCachedCredential, encryptCachedCredential } from "./secret-store";

/**
 * A minted credential is reused until this long before its `expiresAt`, then minted again: a
 * gateway that receives it still has minutes to use it, whatever its own safety margin.
 */
export const CACHED_CREDENTIAL_MARGIN_MS = 5 * 60_000;

export interface CredentialCacheDeps {
  db: Database;
  keyRing: KeyRing;
  clock: Clock;
}

export interface CredentialCacheKey {
  connectionId: string;
  organizationId: string;
  /** The resolver that mints the value; part of the digest. */
  resolver: string;
  /** What the value depends on (the resolver's `cacheScope`). */
  scope: JsonValue;
}

export interface ObtainedCredential extends ResolvedCredential {
  /** True when the value came from the cache, false when `mint` ran for it. */
  reused: boolean;
}

export interface CredentialCache {
  /**
   * The cached value for the key while it is more than `CACHED_CREDENTIAL_MARGIN_MS` from
   * expiring, else the value `mint` returns, stored for the next caller. A value without an
   * expiry, or one already inside the margin, is handed out but not stored.
   */
  obtain(
    key: CredentialCacheKey,
    mint: () => Promise<ResolvedCredential>,
  ): Promise<ObtainedCredential>;
}

/**
 * Resolver-minted credentials (GitHub App installation tokens) shared across sessions, gateways
 * and replicas, encrypted at rest in `cached_credentials`.
 *
 * Single flight: concurrent callers of one cache (one replica) share one promise per key, and
 * minting happens under a transaction-scoped advisory lock on the key, so callers on other
 * replicas wait for the first and then read its value instead of minting their own. The lock's
 * transaction stays open while the provider answers (as an OAuth2 refresh holds its row lock);
 * a failed mint rolls back and stores nothing.
 */
export function createCredentialCache(deps: CredentialCacheDeps): CredentialCache {
  const inflight = new Map<string, Promise<ObtainedCredential>>();
  return {
    obtain(key, mint) {
      const digest = canonicalDigest({ resolver: key.resolver, scope: key.scope });
      const flightKey = `${key.connectionId}:${digest}`;
      const running = inflight.get(flightKey);
      if (running !== undefined) return running;
      const flight = obtainShared(deps, key, digest, mint).finally(() => {
        inflight.delete(flightKey);
      });
      inflight.set(flightKey, flight);
      return flight;
    },
  };
}

async function obtainShared(
  deps: CredentialCacheDeps,
  key: CredentialCacheKey,
  digest: string,
  mint: () => Promise<ResolvedCredential>,
): Promise<ObtainedCredential> {
  const cached = await readFresh(deps, deps.db, key.connectionId, digest);
  if (cached !== undefined) return cached;
  return deps.db.transaction(async (tx) => {
    await tx.execute(
      sql`select pg_advisory_xact_lock(hashtextextended(${`keyway:cached-credential:${key.connectionId}:${digest}`}, 0))`,
    );
    // Another caller may have minted while this one waited for the lock.
    const minted = await readFresh(deps, tx, key.connectionId, digest);
    if (minted !== undefined) return minted;
    const value = await mint();
    const now = deps.clock.now();
    if (
      value.expiresAt !== undefined &&
      value.expiresAt.getTime() - now.getTime() > CACHED_CREDENTIAL_MARGIN_MS
    ) {
      const id = newId("cachedCredential", now);
      const row = {
        id,
        valueCiphertext: encryptCachedCredential(deps.keyRing, id, value.value),
        expiresAt: value.expiresAt,
        createdAt: now,
      };
      await tx
        .insert(cachedCredentials)
        .values({
          ...row,
          connectionId: key.connectionId,
          organizationId: key.organizationId,
          resolver: key.resolver,
          scopeDigest: digest,
        })
        .onConflictDoUpdate({
          target: [cachedCredentials.connectionId, cachedCredentials.scopeDigest],
          set: row,
        });
    }
    return { ...value, reused: false };
  });
}

async function readFresh(
  deps: CredentialCacheDeps,
  executor: Executor,
  connectionId: string,
  digest: string,
): Promise<ObtainedCredential | undefined> {
  const [row] = await executor
    .select()
    .from(cachedCredentials)
    .where(
      and(
        eq(cachedCredentials.connectionId, connectionId),
        eq(cachedCredentials.scopeDigest, digest),
      ),
    )
    .limit(1);
  if (row === undefined) return undefined;
  if (row.expiresAt.getTime() - deps.clock.now().getTime() <= CACHED_CREDENTIAL_MARGIN_MS) {
    return undefined;
  }
  return {
    value: decryptCachedCredential(deps.keyRing, row.id, row.valueCiphertext),
    expiresAt: row.expiresAt,
    reused: true,
  };
}

/**
 * Forgets every value minted for a connection (inside the caller's transaction): when it is
 * revoked, marked in error, reconnected, or its provider says what the values grant changed.
 */
export async function dropCachedCredentials(
  executor: Executor,
  connectionId: string,
): Promise<void> {
  await executor.delete(cachedCredentials).where(eq(cachedCredentials.connectionId, connectionId));
}
