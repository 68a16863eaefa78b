import { generateToken, hashToken } from "@keyway/crypto";
import { apiTokens, type Database, newId, organizations } from "@keyway/db";
import type { Clock } from "@keyway/integrations-core";
import { and, asc, eq, isNull } from "drizzle-orm";
import { appendAudit } from "../audit/service";
import type { OrganizationPrincipal, OrganizationRole } from "../auth/principal";
import { notFound } from "../errors";

type TokenRow = typeof apiTokens.$inferSelect;

export function toApiToken(row: TokenRow) {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    createdAt: row.createdAt.toISOString(),
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
    revokedAt: row.revokedAt?.toISOString() ?? null,
  };
}

export async function createOrganization(
  db: Database,
  clock: Clock,
  actor: string,
  input: { name: string; adminTokenName: string },
) {
  const now = clock.now();
  const organization = { id: newId("organization", now), name: input.name, createdAt: now };
  const token = generateToken("organization");
  const tokenRow: TokenRow = {
    id: newId("apiToken", now),
    organizationId: organization.id,
    name: input.adminTokenName,
    role: "admin",
    tokenHash: hashToken(token),
    createdBy: actor,
    createdAt: now,
    lastUsedAt: null,
    revokedAt: null,
  };
  await db.transaction(async (tx) => {
    await tx.insert(organizations).values(organization);
    await tx.insert(apiTokens).values(tokenRow);
    await appendAudit(tx, clock, {
      organizationId: organization.id,
      actor,
      action: "organization.created",
      subjectType: "organization",
      subjectId: organization.id,
      details: { name: input.name, adminTokenId: tokenRow.id },
    });
  });
  return {
    organization: { id: organization.id, name: organization.name, createdAt: now.toISOString() },
    adminToken: { ...toApiToken(tokenRow), token },
  };
}

export async function listOrganizations(db: Database) {
  const rows = await db.select().from(organizations).orderBy(asc(organizations.id));
  return rows.map((o) => ({ id: o.id, name: o.name, createdAt: o.createdAt.toISOString() }));
}

export async function getOrganization(db: Database, organizationId: string) {
  const [row] = await db.select().from(organizations).where(eq(organizations.id, organizationId));
  if (!row) throw notFound("organization");
  return { id: row.id, name: row.name, createdAt: row.createdAt.toISOString() };
}

export async function createApiToken(
  db: Database,
  clock: Clock,
  principal: OrganizationPrincipal,
  input: { name: string; role: OrganizationRole },
) {
  const now = clock.now();
  const token = generateToken("organization");
  const row: TokenRow = {
    id: newId("apiToken", now),
    organizationId: principal.organizationId,
    name: input.name,
    role: input.role,
    tokenHash: hashToken(token),
    createdBy: principal.actor,
    createdAt: now,
    lastUsedAt: null,
    revokedAt: null,
  };
  await db.transaction(async (tx) => {
    await tx.insert(apiTokens).values(row);
    await appendAudit(tx, clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "api_token.created",
      subjectType: "api_token",
      subjectId: row.id,
      details: { name: input.name, role: input.role },
    });
  });
  return { ...toApiToken(row), token };
}

export async function listApiTokens(db: Database, organizationId: string) {
  const rows = await db
    .select()
    .from(apiTokens)
    .where(eq(apiTokens.organizationId, organizationId))
    .orderBy(asc(apiTokens.id));
  return rows.map(toApiToken);
}

export async function revokeApiToken(
  db: Database,
  clock: Clock,
  principal: OrganizationPrincipal,
  id: string,
) {
  await db.transaction(async (tx) => {
    const [row] = await tx
      .update(apiTokens)
      .set({ revokedAt: clock.now() })
      .where(
        and(
          eq(apiTokens.id, id),
          eq(apiTokens.organizationId, principal.organizationId),
          isNull(apiTokens.revokedAt),
        ),
      )
      .returning({ id: apiTokens.id });
    if (!row) throw notFound("API token");
    await appendAudit(tx, clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "api_token.revoked",
      subjectType: "api_token",
      subjectId: id,
    });
  });
}
