import { canonicalJson, compareCodePoints } from "./canonical-json";
import type { CompiledRuntimePlan, RouteMatch } from "./plan/schema";

/**
 * One reachable slice of the network: a host, methods (or any) and a path prefix, less the
 * queries the route refuses, with whose credential.
 */
export interface Capability {
  host: string;
  methods: string[] | "any";
  pathPrefix: string;
  /** Present only when the route refuses some queries (a read-only git route's push discovery). */
  excludeQuery?: { name: string; values: string[] }[];
  connectionId: string | null;
  auth: string;
}

export interface KeyedChange {
  added: string[];
  removed: string[];
  changed: string[];
}

export interface PlanDiff {
  identical: boolean;
  capabilities: { added: Capability[]; removed: Capability[] };
  mcpServers: KeyedChange;
  files: KeyedChange;
  env: KeyedChange;
  egressPolicyChanged: boolean;
}

/**
 * The capability change between two plans (SPEC §4.4): what becomes reachable or unreachable and
 * with which connection, which MCP servers, files and environment variables change. Ids of routes
 * are ignored, so renumbering alone is not a change. Env values are compared but only names are
 * reported.
 */
export function diffPlans(from: CompiledRuntimePlan, to: CompiledRuntimePlan): PlanDiff {
  const before = capabilityMap(from);
  const after = capabilityMap(to);
  const capabilities = {
    added: [...after].filter(([k]) => !before.has(k)).map(([, c]) => c),
    removed: [...before].filter(([k]) => !after.has(k)).map(([, c]) => c),
  };
  const mcpServers = keyedDiff(
    from.mcpServers.map((s) => [s.name, canonicalJson({ ...s, bindingId: undefined })] as const),
    to.mcpServers.map((s) => [s.name, canonicalJson({ ...s, bindingId: undefined })] as const),
  );
  const files = keyedDiff(
    from.files.map((f) => [`${f.root}/${f.path}`, `${f.mode}:${f.content}`] as const),
    to.files.map((f) => [`${f.root}/${f.path}`, `${f.mode}:${f.content}`] as const),
  );
  const env = keyedDiff(
    from.env.map((e) => [e.name, e.value] as const),
    to.env.map((e) => [e.name, e.value] as const),
  );
  const egressPolicyChanged =
    canonicalJson(from.egressPolicy ?? null) !== canonicalJson(to.egressPolicy ?? null);
  const identical =
    capabilities.added.length === 0 &&
    capabilities.removed.length === 0 &&
    [mcpServers, files, env].every(
      (c) => c.added.length + c.removed.length + c.changed.length === 0,
    ) &&
    !egressPolicyChanged;
  return { identical, capabilities, mcpServers, files, env, egressPolicyChanged };
}

function capabilityMap(plan: CompiledRuntimePlan): Map<string, Capability> {
  const out = new Map<string, Capability>();
  for (const route of plan.routes) {
    const methods = route.match.methods ? [...route.match.methods].sort(compareCodePoints) : "any";
    const excludeQuery = sortedExclusions(route.match.excludeQuery);
    for (const host of route.match.hosts) {
      for (const pathPrefix of route.match.pathPrefixes ?? ["/"]) {
        const capability: Capability = {
          host,
          methods,
          pathPrefix,
          ...(excludeQuery ? { excludeQuery } : {}),
          connectionId: route.credential?.connectionId ?? null,
          auth: route.auth.type,
        };
        out.set(canonicalJson(capability), capability);
      }
    }
  }
  return new Map([...out].sort(([a], [b]) => compareCodePoints(a, b)));
}

/**
 * Exclusions in one order, so that only a change in what is refused is a change: names sorted,
 * values lower-cased (the matcher compares them case-insensitively) and sorted.
 */
function sortedExclusions(
  exclusions: RouteMatch["excludeQuery"],
): Capability["excludeQuery"] | undefined {
  if (!exclusions) return undefined;
  return exclusions
    .map(({ name, values }) => ({
      name,
      values: [...new Set(values.map((v) => v.toLowerCase()))].sort(compareCodePoints),
    }))
    .sort(
      (a, b) =>
        compareCodePoints(a.name, b.name) ||
        compareCodePoints(a.values.join("\0"), b.values.join("\0")),
    );
}

function keyedDiff(
  from: readonly (readonly [string, string])[],
  to: readonly (readonly [string, string])[],
): KeyedChange {
  const a = new Map(from);
  const b = new Map(to);
  const sorted = (xs: string[]) => xs.sort(compareCodePoints);
  return {
    added: sorted([...b.keys()].filter((k) => !a.has(k))),
    removed: sorted([...a.keys()].filter((k) => !b.has(k))),
    changed: sorted([...b.keys()].filter((k) => a.has(k) && a.get(k) !== b.get(k))),
  };
}
