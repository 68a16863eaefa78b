import type { DatabaseHandle } from "@keyway/db";
import {
  type CompiledRuntimePlan,
  compiledPlanSchema,
  type EgressRoute,
} from "@keyway/integrations-core";
import { LRUCache } from "lru-cache";
import { selectPlanJson } from "./queries";

export interface CachedPlan {
  plan: CompiledRuntimePlan;
  routes: ReadonlyMap<string, EgressRoute>;
}

/**
 * Plans are content-addressed and never change, so a plan read once can be kept for good; the
 * bound only limits memory (least recently used first out).
 */
export interface PlanCache {
  get(sql: DatabaseHandle["sql"], digest: string): Promise<CachedPlan | undefined>;
}

export function createPlanCache(maxEntries = 1000): PlanCache {
  const entries = new LRUCache<string, CachedPlan>({ max: maxEntries });
  return {
    async get(sql, digest) {
      const hit = entries.get(digest);
      if (hit) return hit;
      const stored = await selectPlanJson(sql, digest);
      if (stored === undefined) return undefined;
      // Validated on the way in: the routes below are what credentials are released for.
      const plan = compiledPlanSchema.parse(stored);
      const cached: CachedPlan = { plan, routes: new Map(plan.routes.map((r) => [r.id, r])) };
      entries.set(digest, cached);
      return cached;
    },
  };
}
