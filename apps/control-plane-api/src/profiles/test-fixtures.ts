import { randomBytes } from "node:crypto";
import { integrationConnections, integrationTargets, newId } from "@keyway/db";
import { eq } from "drizzle-orm";
import type { TestApp } from "../testing/test-app";

/**
 * Test set-up for profiles and sessions: targets and connections written straight into their
 * tables (credentials are not needed to compile), so these tests depend only on the schema.
 * Target keys are random because other set-up (a registry sync) may own the plain variant ids.
 */

const KINDS = { openai: "agent", "http-api": "connector" } as const;

export async function insertTarget(
  t: TestApp,
  variantId: keyof typeof KINDS,
  options: { enabled?: boolean; config?: Record<string, unknown> } = {},
): Promise<string> {
  const id = newId("target");
  await t.deps.database.db.insert(integrationTargets).values({
    id,
    targetKey: `${variantId}-${randomBytes(4).toString("hex")}`,
    familyId: variantId,
    variantId,
    kind: KINDS[variantId],
    enabled: options.enabled ?? true,
    config: options.config ?? {},
    source: "api",
  });
  return id;
}

export async function insertConnection(
  t: TestApp,
  organizationId: string,
  targetId: string,
  options: { status?: "active" | "error" | "revoked" } = {},
): Promise<string> {
  const id = newId("connection");
  await t.deps.database.db.insert(integrationConnections).values({
    id,
    organizationId,
    targetId,
    methodId: "api-key",
    methodKind: "api-key",
    displayName: "test connection",
    status: options.status ?? "active",
    createdBy: "test",
  });
  return id;
}

export async function setTargetEnabled(t: TestApp, targetId: string, enabled: boolean) {
  await t.deps.database.db
    .update(integrationTargets)
    .set({ enabled })
    .where(eq(integrationTargets.id, targetId));
}

/** Row count of a table, to show a refused request wrote nothing. */
export async function countRows(t: TestApp, table: string): Promise<number> {
  const rows = await t.deps.database.sql.unsafe(`select count(*)::int as n from ${table}`);
  return Number(rows[0]?.n);
}

export async function countAll(t: TestApp) {
  const tables = [
    "sandbox_profiles",
    "profile_versions",
    "profile_bindings",
    "compiled_plans",
    "sandbox_sessions",
    "audit_log",
  ];
  const counts: Record<string, number> = {};
  for (const table of tables) counts[table] = await countRows(t, table);
  return counts;
}

export const openaiBinding = (connectionId: string, config: Record<string, unknown> = {}) => ({
  connectionId,
  kind: "agent",
  config: { model: "gpt-6.2-sol", reasoningEffort: "high", ...config },
});

export const httpApiBinding = (connectionId: string, config: Record<string, unknown> = {}) => ({
  connectionId,
  kind: "connector",
  config,
});

export const HTTP_API_CONFIG = { baseUrl: "https://api.example.test/v1" };
