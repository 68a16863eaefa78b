/**
 * Heap per plan in the gateway's plan cache (`apps/data-plane-gateway/src/plan-cache.ts`), measured
 * against the cache's own byte estimate, which bounds it (`gateway.caches.plans_mb`).
 *
 *   pnpm bench:plan-memory [--json FILE] [--plans N]
 *
 * Plans like the gateway benchmark's (one `http-api`-style bearer route per host, each with a
 * path prefix), `--plans` (default 2,000) per case, each with its own binding and route ids:
 * "alike" plans bind the same connections the same way (profile versions of one profile; they
 * share one shape), "distinct" ones each have their own path prefixes (the worst case: nothing
 * shared). The heap is measured with `process.memoryUsage().heapUsed` after a full GC
 * (`--expose-gc`, set by the package script) before and after loading every plan.
 */
import {
  type CompiledRuntimePlan,
  compiledPlanSchema,
  planDigest,
} from "@keyway/integrations-core";
import { createPlanCache } from "../../apps/data-plane-gateway/src/plan-cache";
import { jsonOutputPath, machineFacts, writeJson } from "./bench-lib";

const gc = globalThis.gc;
if (gc === undefined) throw new Error("run with node --expose-gc (pnpm bench:plan-memory)");
const at = process.argv.indexOf("--plans");
const PLANS = at < 0 ? 2_000 : Number(process.argv[at + 1]);

let sequence = 0;
/** A ULID-like id, as the control plane makes them. */
const newId = (prefix: string) => `${prefix}_01K${String(sequence++).padStart(23, "0")}`;

function plan(routes: number, version: number, distinct: boolean): CompiledRuntimePlan {
  return compiledPlanSchema.parse({
    schemaVersion: 1,
    profileVersionId: newId("pv"),
    routes: Array.from({ length: routes }, (_, r) => {
      const bindingId = newId("bnd");
      return {
        id: `${bindingId}.route.0`,
        bindingId,
        match: {
          hosts: [`svc-${r}.other.test`],
          pathPrefixes: [distinct ? `/v${r}/p${version}` : `/v${r}`],
        },
        upstream: { baseUrl: `https://svc-${r}.other.test` },
        auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
        credential: { connectionId: newId("con"), secretType: "api_key" },
      };
    }),
    files: [],
    env: [],
    processes: [],
    workspaceSources: [],
    mcpServers: [],
    agentRuntimes: [],
  });
}

async function measure(routes: number, distinct: boolean) {
  // Alike plans share their connections too: only binding and route ids differ.
  const template = plan(routes, 0, false);
  const served = new Map<string, string>();
  for (let v = 0; v < PLANS; v++) {
    const p = distinct
      ? plan(routes, v, true)
      : {
          ...template,
          profileVersionId: newId("pv"),
          routes: template.routes.map((r) => {
            const bindingId = newId("bnd");
            return { ...r, id: `${bindingId}.route.0`, bindingId };
          }),
        };
    served.set(planDigest(p), JSON.stringify(p));
  }
  const cache = createPlanCache({
    // As the control plane client hands them over: parsed from JSON and validated.
    source: { fetchPlan: async (d) => compiledPlanSchema.parse(JSON.parse(served.get(d) ?? "")) },
    maxBytes: 2 ** 40,
  });
  gc?.();
  const before = process.memoryUsage().heapUsed;
  for (const digest of served.keys()) await cache.load(digest);
  gc?.();
  const measured = (process.memoryUsage().heapUsed - before) / PLANS;
  const estimated = cache.stats().bytes / PLANS;
  return { routes, plans: distinct ? "distinct" : "alike", measured, estimated };
}

const rows = [];
for (const routes of [2, 20, 200]) {
  for (const distinct of [false, true]) rows.push(await measure(routes, distinct));
}
console.log(`plan cache heap per plan, ${PLANS} plans per case (bytes)\n`);
console.log(
  `${"routes".padStart(6)}  ${"plans".padEnd(9)}${"measured".padStart(10)}${"estimated".padStart(11)}${"ratio".padStart(7)}`,
);
for (const r of rows) {
  console.log(
    `${String(r.routes).padStart(6)}  ${r.plans.padEnd(9)}${r.measured.toFixed(0).padStart(10)}${r.estimated.toFixed(0).padStart(11)}${(r.estimated / r.measured).toFixed(2).padStart(7)}`,
  );
}
writeJson(jsonOutputPath(), {
  machine: machineFacts(`pnpm bench:plan-memory ${process.argv.slice(2).join(" ")}`.trim()),
  plansPerCase: PLANS,
  rows,
});
