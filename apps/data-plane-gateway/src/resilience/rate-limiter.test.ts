import type { EgressRoute } from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import { GatewayError } from "../errors";
import { testClock } from "../testing/fixtures";
import { createRouteRateLimiter, TokenBuckets } from "./rate-limiter";

/** Keys are objects (in the gateway, a cached plan's route objects). */
const a = {};
const b = {};

describe("token buckets", () => {
  it("grants a full burst, then says how long until the next token", () => {
    const clock = testClock();
    const buckets = new TokenBuckets<object>({ requestsPerSecond: 2, burst: 3 }, clock);
    expect([buckets.take(a), buckets.take(a), buckets.take(a)]).toEqual([0, 0, 0]);
    expect(buckets.take(a)).toBe(500);
    clock.at(200);
    expect(buckets.take(a)).toBe(300);
  });

  it("refills lazily at the configured rate, up to the burst", () => {
    const clock = testClock();
    const buckets = new TokenBuckets<object>({ requestsPerSecond: 10, burst: 2 }, clock);
    buckets.take(a);
    buckets.take(a);
    clock.at(100);
    expect(buckets.take(a)).toBe(0);
    expect(buckets.take(a)).toBe(100);
    // A long quiet period fills the bucket to its burst, not beyond.
    clock.at(60_000);
    expect([buckets.take(a), buckets.take(a)]).toEqual([0, 0]);
    expect(buckets.take(a)).toBeGreaterThan(0);
  });

  it("keeps one bucket per key", () => {
    const clock = testClock();
    const buckets = new TokenBuckets<object>({ requestsPerSecond: 1, burst: 1 }, clock);
    expect(buckets.take(a)).toBe(0);
    expect(buckets.take(a)).toBe(1000);
    expect(buckets.take(b)).toBe(0);
  });

  it("adds nothing when the clock steps back", () => {
    const clock = testClock();
    clock.at(10_000);
    const buckets = new TokenBuckets<object>({ requestsPerSecond: 1, burst: 1 }, clock);
    expect(buckets.take(a)).toBe(0);
    clock.at(5_000);
    expect(buckets.take(a)).toBe(1000);
    // Refill counts from the last instant seen, not from the stepped-back one.
    clock.at(10_500);
    expect(buckets.take(a)).toBe(500);
    clock.at(11_000);
    expect(buckets.take(a)).toBe(0);
  });

  it("rejects settings that cannot refill", () => {
    const clock = testClock();
    expect(() => new TokenBuckets<object>({ requestsPerSecond: 0, burst: 1 }, clock)).toThrow(
      RangeError,
    );
    expect(() => new TokenBuckets<object>({ requestsPerSecond: 1, burst: 0 }, clock)).toThrow(
      RangeError,
    );
  });
});

const route = (id: string): EgressRoute => ({
  id,
  bindingId: "b1",
  match: { hosts: ["api.example.test"] },
  upstream: { baseUrl: "https://api.example.test" },
  auth: { type: "none" },
});

describe("route rate limiter", () => {
  it("refuses with 429 rate_limited and Retry-After rounded up to whole seconds", () => {
    const clock = testClock();
    const limited: string[] = [];
    const admit = createRouteRateLimiter({
      settings: { requestsPerSecond: 0.4, burst: 1 },
      clock,
      onLimited: (r) => limited.push(r.id),
    });
    const r1 = route("r1");
    admit(r1);
    let error: GatewayError | undefined;
    try {
      admit(r1);
    } catch (caught) {
      if (!(caught instanceof GatewayError)) throw caught;
      error = caught;
    }
    expect(error?.code).toBe("rate_limited");
    expect(error?.status).toBe(429);
    expect(error?.retryAfterSeconds).toBe(3); // 2.5 s until the next token
    expect(limited).toEqual(["r1"]);
  });

  it("keeps one bucket per route of each cached plan", () => {
    const clock = testClock();
    const admit = createRouteRateLimiter({ settings: { requestsPerSecond: 1, burst: 1 }, clock });
    const r1 = route("r1");
    admit(r1);
    expect(() => admit(route("r2"))).not.toThrow();
    // The same route id in another plan: the plan cache gives each plan its own route objects.
    expect(() => admit(route("r1"))).not.toThrow();
    expect(() => admit(r1)).toThrow(GatewayError);
  });
});
