import type { Clock } from "@keyway/crypto";
import { GatewayError } from "../errors";
import { LruCache } from "../lru-cache";

/**
 * Per-route rate limit (SPEC §7 "Resilience"): one token bucket per plan digest + route id, so
 * every session running the same compiled plan shares a route's budget. Buckets refill lazily
 * when they are next used (no timer per bucket) and live in an LRU, so memory stays bounded
 * however many plans and routes pass through.
 */

export interface RateLimitSettings {
  /** Tokens added per second (fractions allowed); each request takes one. */
  requestsPerSecond: number;
  /** Bucket capacity: how many requests may go at once after a quiet period. */
  burst: number;
  /** Buckets kept; the least recently used is dropped (and starts full if seen again). */
  maxBuckets?: number;
}

interface Bucket {
  tokens: number;
  updatedAtMs: number;
}

/** Token buckets by key, refilled from the clock on each `take`. */
export class TokenBuckets {
  readonly #buckets: LruCache<string, Bucket>;
  readonly #tokensPerMs: number;
  readonly #burst: number;

  constructor(
    settings: RateLimitSettings,
    private readonly clock: Clock,
  ) {
    if (!(settings.requestsPerSecond > 0) || !Number.isFinite(settings.requestsPerSecond)) {
      throw new RangeError("requestsPerSecond must be a positive number");
    }
    if (!Number.isInteger(settings.burst) || settings.burst < 1) {
      throw new RangeError("burst must be a positive integer");
    }
    this.#tokensPerMs = settings.requestsPerSecond / 1000;
    this.#burst = settings.burst;
    this.#buckets = new LruCache(settings.maxBuckets ?? 10_000);
  }

  /** Takes one token from `key`'s bucket: 0 when granted, else milliseconds until one is there. */
  take(key: string): number {
    const nowMs = this.clock.now().getTime();
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: this.#burst, updatedAtMs: nowMs };
      this.#buckets.set(key, bucket);
    } else if (nowMs > bucket.updatedAtMs) {
      // A clock that steps back adds nothing rather than draining the bucket.
      bucket.tokens = Math.min(
        this.#burst,
        bucket.tokens + (nowMs - bucket.updatedAtMs) * this.#tokensPerMs,
      );
      bucket.updatedAtMs = nowMs;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - bucket.tokens) / this.#tokensPerMs);
  }
}

/** Admits a route request or throws 429 `rate_limited` with `Retry-After`. */
export type AdmitRouteRequest = (planDigest: string, routeId: string) => void;

export function createRouteRateLimiter(options: {
  settings: RateLimitSettings;
  clock: Clock;
  /** Called for each refused request (metrics). */
  onLimited?: (routeId: string) => void;
}): AdmitRouteRequest {
  const buckets = new TokenBuckets(options.settings, options.clock);
  const onLimited = options.onLimited;

  return function admitRouteRequest(planDigest, routeId) {
    // A digest is hex, so a space cannot occur in it: the key is unambiguous.
    const waitMs = buckets.take(`${planDigest} ${routeId}`);
    if (waitMs === 0) return;
    onLimited?.(routeId);
    throw new GatewayError("rate_limited", "too many requests on this route; retry later", {
      retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)),
    });
  };
}
