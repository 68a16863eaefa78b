import type { Clock } from "@keyway/crypto";
import type { EgressRoute } from "@keyway/integrations-core";
import { GatewayError } from "../errors";

/**
 * Per-route rate limit (SPEC §7 "Resilience"): one token bucket per route of a cached plan (plan
 * digest + route id), so every session running the same compiled plan shares a route's budget.
 * Buckets refill lazily when they are next used (no timer per bucket) and belong to the route
 * object (a `WeakMap`): they live exactly as long as the plan stays in memory, which the plan
 * cache bounds by bytes, and finding one allocates nothing. A plan evicted and fetched again
 * starts with full buckets.
 */

export interface RateLimitSettings {
  /** Tokens added per second (fractions allowed); each request takes one. */
  requestsPerSecond: number;
  /** Bucket capacity: how many requests may go at once after a quiet period. */
  burst: number;
}

interface Bucket {
  tokens: number;
  updatedAtMs: number;
}

/** Token buckets by key object, refilled from the clock on each `take`. */
export class TokenBuckets<K extends object> {
  readonly #buckets = new WeakMap<K, Bucket>();
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
  }

  /** Takes one token from `key`'s bucket: 0 when granted, else milliseconds until one is there. */
  take(key: K): number {
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

/**
 * Admits a request on a route of a cached plan, or throws 429 `rate_limited` with `Retry-After`.
 * The route object stands for plan digest + route id: the plan cache gives each plan's routes
 * their own objects.
 */
export type AdmitRouteRequest = (route: EgressRoute) => void;

export function createRouteRateLimiter(options: {
  settings: RateLimitSettings;
  clock: Clock;
  /** Called for each refused request (metrics). */
  onLimited?: (route: EgressRoute) => void;
}): AdmitRouteRequest {
  const buckets = new TokenBuckets<EgressRoute>(options.settings, options.clock);
  const onLimited = options.onLimited;

  return function admitRouteRequest(route) {
    const waitMs = buckets.take(route);
    if (waitMs === 0) return;
    onLimited?.(route);
    throw new GatewayError("rate_limited", "too many requests on this route; retry later", {
      retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)),
    });
  };
}
