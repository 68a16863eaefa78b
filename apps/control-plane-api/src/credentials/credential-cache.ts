import { setTimeout as sleep } from "node:timers/promises";
import type { KeyRing } from "@keyway/crypto";
import {
  cachedCredentials,
  type DatabaseHandle,
  type Executor,
  newId,
  withTryAdvisoryLock,
} from "@keyway/db";
import {
  type Clock,
  canonicalDigest,
  type JsonValue,
  OAuth2Error,
  type ResolvedCredential,
} from "@keyway/integrations-core";
import { and, eq } from "drizzle-orm";
import { decryptCachedCredential, encryptCachedCredential } from "./secret-store";

/**
 * A minted credential is reused until this long before its `expiresAt`, then minted again: a
 * gateway that receives it still has minutes to use it, whatever its own safety margin.
 */
export const CACHED_CREDENTIAL_MARGIN_MS = 5 * 60_000;
/** How long a caller that found another replica minting the same scope waits for its value. */
const FOLLOWER_WAIT_MS = 8_000;

export interface CredentialCacheDeps {
  database: DatabaseHandle;
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
 * Single flight, as for OAuth2 refreshes (`oauth2-tokens.ts`): concurrent callers of one cache
 * (one replica) share one promise per key; across replicas a session-level advisory lock per
 * key, tried without waiting and held outside any transaction, so the provider call never runs
 * inside an open transaction (nor against `lock_timeout` or the idle-transaction timeout).
 * Callers on other replicas poll for the holder's value (up to 8 s) instead of minting their
 * own. A failed mint stores nothing.
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
  const { db } = deps.database;
  const cached = await readFresh(deps, db, key.connectionId, digest);
  if (cached !== undefined) return cached;
  const waitUntil = performance.now() + FOLLOWER_WAIT_MS;
  let pause = 20;
  for (;;) {
    const attempt = await withTryAdvisoryLock(
      deps.database.sql,
      `cached-credential:${key.connectionId}:${digest}`,
      async () => {
        // Another replica may have minted between the read above and the lock.
        const minted = await readFresh(deps, db, key.connectionId, digest);
        if (minted !== undefined) return minted;
        const value = await mint();
        await store(deps, key, digest, value);
        return { ...value, reused: false };
      },
    );
    if (attempt.acquired) return attempt.value;
    // Another replica is minting this scope: wait for its value rather than mint a second one.
    await sleep(pause);
    pause = Math.min(pause * 2, 100);
    const minted = await readFresh(deps, db, key.connectionId, digest);
    if (minted !== undefined) return minted;
    if (performance.now() > waitUntil) {
      throw new OAuth2Error(
        "temporary",
        "mint_in_progress",
        "another replica is minting this credential and has not finished",
      );
    }
  }
}

/** Keeps a minted value for later callers, unless it has no expiry or expires within the margin. */
async function store(
  deps: CredentialCacheDeps,
  key: CredentialCacheKey,
  digest: string,
  value: ResolvedCredential,
): Promise<void> {
  const now = deps.clock.now();
  if (
    value.expiresAt === undefined ||
    value.expiresAt.getTime() - now.getTime() <= CACHED_CREDENTIAL_MARGIN_MS
  ) {
    return;
  }
  const id = newId("cachedCredential", now);
  const row = {
    id,
    valueCiphertext: encryptCachedCredential(deps.keyRing, id, value.value),
    expiresAt: value.expiresAt,
    createdAt: now,
  };
  await deps.database.db
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
