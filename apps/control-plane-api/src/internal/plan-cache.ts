import type { DatabaseHandle } from "@keyway/db";
import {
  type CompiledRuntimePlan,
  compiledPlanSchema,
  type EgressRoute,
} from "@keyway/integrations-core";
import { selectPlanJson } from "./queries";

export interface CachedPlan {
  plan: CompiledRuntimePlan;
  routes: ReadonlyMap<string, EgressRoute>;
}

/**
 * Plans are content-addressed and never change, so a plan read once can be kept for good; the
 * bound only limits memory. Eviction is least-recently-used (a Map keeps insertion order, and a
 * hit re-inserts its entry at the end).
 */
export interface PlanCache {
  get(sql: DatabaseHandle["sql"], digest: string): Promise<CachedPlan | undefined>;
}

export function createPlanCache(maxEntries = 1000): PlanCache {
  const entries = new Map<string, CachedPlan>();
  return {
    async get(sql, digest) {
      const hit = entries.get(digest);
      if (hit) {
        entries.delete(digest);
        entries.set(digest, hit);
        return hit;
      }
      const stored = await selectPlanJson(sql, digest);
      if (stored === undefined) return undefined;
      // Validated on the way in: the routes below are what credentials are released for.
      const plan = compiledPlanSchema.parse(stored);
      const cached: CachedPlan = { plan, routes: new Map(plan.routes.map((r) => [r.id, r])) };
      entries.set(digest, cached);
      if (entries.size > maxEntries) {
        const oldest = entries.keys().next();
        if (!oldest.done) entries.delete(oldest.value);
      }
      return cached;
    },
  };
}
