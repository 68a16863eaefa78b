import { integrationTargets } from "@keyway/db";
import type { FetchLike } from "@keyway/integrations-core";
import { asc, eq } from "drizzle-orm";
import type { WorkerDeps } from "../../deps";

/** `worker.target_health_timeout_ms` (packages/config). */
export interface TargetHealthSettings {
  timeoutMs: number;
}

export type TargetHealthDeps = Pick<WorkerDeps, "database" | "registry" | "clock" | "fetch"> & {
  settings: { targetHealth: TargetHealthSettings };
};

/** Endpoints probed per target: a target names a handful (API, MCP server, OAuth2 endpoints). */
const MAX_ENDPOINTS = 8;

export interface EndpointHealth {
  url: string;
  reachable: boolean;
  /** The HTTP status it answered with, when it answered. */
  status?: number;
  latencyMs: number;
  /** Why it is unreachable: `timeout`, `network_error`, `invalid_url`. */
  error?: string;
}

/** What `integration_targets.health` holds (and `GET /v1/integration/targets` shows). */
export interface TargetHealth {
  status: "healthy" | "degraded" | "unreachable" | "unknown";
  checkedAt: string;
  endpoints: EndpointHealth[];
}

/**
 * Probes every enabled target (SPEC §2 Target `health`): each distinct http(s) URL of its
 * config, as the definition parsed it with its defaults (API base, MCP server, OAuth2
 * endpoints), gets one GET without credentials. Any HTTP answer, 401 and 404 included, means
 * the endpoint is reachable: the probe checks the network path and the server, not a credential
 * (connection tests do that). `healthy` when every endpoint answered, `degraded` when some did,
 * `unreachable` when none did, `unknown` for a target whose config names no URL or no longer
 * parses. Each target's result is written at once; running twice only probes twice.
 */
export async function probeTargetHealth(deps: TargetHealthDeps): Promise<number> {
  const targets = await deps.database.db
    .select()
    .from(integrationTargets)
    .where(eq(integrationTargets.enabled, true))
    .orderBy(asc(integrationTargets.targetKey));
  for (const target of targets) {
    const definition = deps.registry.get(target.variantId);
    const config = definition?.targetConfigSchema.safeParse(target.config);
    const urls = config?.success ? endpointUrls(config.data) : [];
    const endpoints = await Promise.all(
      urls.map((url) => probe(deps.fetch, url, deps.settings.targetHealth.timeoutMs)),
    );
    const reachable = endpoints.filter((endpoint) => endpoint.reachable).length;
    const health: TargetHealth = {
      status:
        endpoints.length === 0
          ? "unknown"
          : reachable === endpoints.length
            ? "healthy"
            : reachable === 0
              ? "unreachable"
              : "degraded",
      checkedAt: deps.clock.now().toISOString(),
      endpoints,
    };
    await deps.database.db
      .update(integrationTargets)
      .set({ health: { ...health } })
      .where(eq(integrationTargets.id, target.id));
  }
  return targets.length;
}

/** Distinct http(s) URLs anywhere in a parsed config (nested objects included), in order. */
export function endpointUrls(config: unknown): string[] {
  const found = new Set<string>();
  const visit = (value: unknown, depth: number) => {
    if (found.size >= MAX_ENDPOINTS || depth > 3) return;
    if (typeof value === "string") {
      if (/^https?:\/\//.test(value) && URL.canParse(value)) found.add(value);
    } else if (Array.isArray(value)) {
      for (const item of value) visit(item, depth + 1);
    } else if (value !== null && typeof value === "object") {
      for (const item of Object.values(value)) visit(item, depth + 1);
    }
  };
  visit(config, 0);
  return [...found];
}

async function probe(fetch: FetchLike, url: string, timeoutMs: number): Promise<EndpointHealth> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  try {
    const response = await fetch(url, {
      method: "GET",
      redirect: "manual",
      headers: { "user-agent": "keyway-health-probe" },
      signal: AbortSignal.timeout(timeoutMs),
    });
    await response.body?.cancel();
    return { url, reachable: true, status: response.status, latencyMs: elapsed() };
  } catch (error) {
    const timedOut = error instanceof Error && error.name === "TimeoutError";
    return {
      url,
      reachable: false,
      latencyMs: elapsed(),
      error: timedOut ? "timeout" : "network_error",
    };
  }
}
