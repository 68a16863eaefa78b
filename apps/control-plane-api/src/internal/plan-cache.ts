import type { DatabaseHandle } from "@keyway/db";
import { LRUCache } from "lru-cache";
import { selectPlanTexts } from "./queries";

/**
 * The stored plans gateways ask for, kept as the JSON text PostgreSQL returns: a plan goes out as
 * it was stored, neither parsed nor serialized again here (the gateway validates it and checks it
 * against its digest). Plans are content-addressed and never change, so a plan read once can be
 * kept for good; the bound only limits memory (least recently used first out).
 */
export interface PlanCache {
  /** Each known plan's JSON text by digest; unknown digests are absent. One statement at most. */
  get(sql: DatabaseHandle["sql"], digests: readonly string[]): Promise<Map<string, string>>;
}

export function createPlanCache(maxEntries = 1000): PlanCache {
  const entries = new LRUCache<string, string>({ max: maxEntries });
  return {
    async get(sql, digests) {
      const found = new Map<string, string>();
      const missing: string[] = [];
      for (const digest of new Set(digests)) {
        const hit = entries.get(digest);
        if (hit !== undefined) found.set(digest, hit);
        else missing.push(digest);
      }
      if (missing.length === 0) return found;
      for (const { digest, plan } of await selectPlanTexts(sql, missing)) {
        entries.set(digest, plan);
        found.set(digest, plan);
      }
      return found;
    },
  };
}
