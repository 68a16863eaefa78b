import { type CompiledRuntimePlan, planDigest } from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import { createPlanCache } from "./plan-cache";
import { testPlan, testRoute } from "./testing/fixtures";

/** A profile version's plan: `routes` routes on their own hosts, ids unique to `version`. */
function versionPlan(version: number, routes = 3, hostOffset = 0): CompiledRuntimePlan {
  return {
    ...testPlan(
      Array.from({ length: routes }, (_, r) => ({
        ...testRoute(
          `b${version}.route.${r}`,
          `svc-${r + hostOffset}.example.test`,
          `https://svc-${r + hostOffset}.example.test`,
          { type: "bearer", name: "authorization", scheme: "Bearer" },
          { pathPrefixes: ["/v1"] },
        ),
        bindingId: `b${version}`,
        credential: { connectionId: `conn_${r}`, secretType: "api_key" },
      })),
    ),
    profileVersionId: `pv_${version}`,
  };
}

/** A control plane that knows `plans` and counts what it was asked. */
function source(plans: readonly CompiledRuntimePlan[]) {
  const byDigest = new Map(plans.map((plan) => [planDigest(plan), plan]));
  const fetched: string[] = [];
  let failing = false;
  return {
    fetched,
    digests: [...byDigest.keys()],
    fail(value: boolean) {
      failing = value;
    },
    async fetchPlan(digest: string) {
      fetched.push(digest);
      await new Promise((resolve) => setImmediate(resolve));
      const plan = byDigest.get(digest);
      if (failing || plan === undefined) throw new Error("no such plan");
      return plan;
    },
  };
}

describe("plan cache", () => {
  it("fetches a plan once for concurrent loads and then answers from memory", async () => {
    const plans = source([versionPlan(1)]);
    const outcomes: string[] = [];
    const cache = createPlanCache({
      source: plans,
      observer: { fetched: (outcome) => outcomes.push(outcome) },
    });
    const digest = plans.digests[0]!;
    expect(cache.cached(digest)).toBeUndefined();
    const [a, b] = await Promise.all([cache.load(digest), cache.load(digest)]);
    expect(a).toBe(b);
    expect(cache.cached(digest)).toBe(a);
    expect(await cache.load(digest)).toBe(a);
    expect(plans.fetched).toEqual([digest]);
    expect(outcomes).toEqual(["ok"]);
    const ids = Array.from({ length: a.routeCount }, (_, i) => a.route(i).id);
    expect(ids.sort()).toEqual(["b1.route.0", "b1.route.1", "b1.route.2"]);
    expect(a.route(0)).toBe(a.route(0));
  });

  it("keeps nothing of a failed fetch, and fetches again next time", async () => {
    const plans = source([versionPlan(1)]);
    const outcomes: string[] = [];
    const cache = createPlanCache({
      source: plans,
      observer: { fetched: (outcome) => outcomes.push(outcome) },
    });
    const digest = plans.digests[0]!;
    plans.fail(true);
    await expect(cache.load(digest)).rejects.toThrow("no such plan");
    plans.fail(false);
    await cache.load(digest);
    expect(outcomes).toEqual(["failed", "ok"]);
    expect(cache.stats().plans).toBe(1);
  });

  it("holds what plans of one shape have alike once: templates and route index", async () => {
    const plans = source([versionPlan(1), versionPlan(2), versionPlan(3, 3, 10)]);
    const cache = createPlanCache({ source: plans });
    const [one, two, other] = await Promise.all(plans.digests.map((d) => cache.load(d)));
    expect(two!.index).toBe(one!.index);
    expect(two!.route(0).upstream).toBe(one!.route(0).upstream);
    expect(two!.route(0).match).toBe(one!.route(0).match);
    expect(two!.route(0).id).toBe(one!.route(0).id.replace("b1", "b2"));
    expect(two!.route(0).bindingId).toBe("b2");
    expect(other!.index).not.toBe(one!.index);
    expect(cache.stats()).toMatchObject({ plans: 3, shapes: 2 });
    // A second plan of a shape costs far less than the first.
    const alone = createPlanCache({ source: plans });
    await alone.load(plans.digests[0]!);
    const first = alone.stats().bytes;
    await alone.load(plans.digests[1]!);
    expect(alone.stats().bytes - first).toBeLessThan(first / 2);
  });

  it("stays within its bytes, evicting the least recently used plans and their shapes", async () => {
    // Every plan its own shape: the worst case, a tenant creating profile versions without end.
    const all = Array.from({ length: 40 }, (_, v) => versionPlan(v, 3, v * 3));
    const plans = source(all);
    const probe = createPlanCache({ source: plans });
    await probe.load(plans.digests[0]!);
    const onePlan = probe.stats().bytes;
    plans.fetched.length = 0;

    const cache = createPlanCache({ source: plans, maxBytes: onePlan * 10.5 });
    const recent = plans.digests[0]!;
    for (const digest of plans.digests) {
      await cache.load(digest);
      await cache.load(recent); // kept in use throughout
      expect(cache.stats().bytes).toBeLessThanOrEqual(onePlan * 10.5);
    }
    expect(cache.stats()).toMatchObject({ plans: 10, shapes: 10 });
    expect(cache.cached(recent)).toBeDefined();
    expect(cache.cached(plans.digests.at(-1)!)).toBeDefined();
    expect(cache.cached(plans.digests[1]!)).toBeUndefined();
    expect(plans.fetched.filter((d) => d === recent)).toHaveLength(1);
    // An evicted plan is fetched again when a session needs it.
    await cache.load(plans.digests[1]!);
    expect(plans.fetched.filter((d) => d === plans.digests[1])).toHaveLength(2);
  });

  it("answers a plan larger than the whole budget without keeping it", async () => {
    const plans = source([versionPlan(1, 50)]);
    const cache = createPlanCache({ source: plans, maxBytes: 1024 });
    const digest = plans.digests[0]!;
    expect((await cache.load(digest)).routeCount).toBe(50);
    expect(cache.stats()).toEqual({ plans: 0, shapes: 0, bytes: 0 });
  });
});
