import { hashToken, tokenKind, verifyTokenHash } from "@keyway/crypto";
import { apiTokens, organizations } from "@keyway/db";
import { and, eq, isNull } from "drizzle-orm";
import type { MiddlewareHandler } from "hono";
import type { AppDeps } from "../deps";
import type { AppEnv } from "../env";
import { type Principal, unauthorized } from "./principal";

/**
 * Resolves `Authorization: Bearer …` to a principal: operator tokens (hashes from config),
 * organization API tokens (hashes in the database), or OIDC JWTs (when configured). Every failure
 * is the same 401, so a caller learns nothing about which kind of token almost worked.
 */
export function authenticate(deps: AppDeps): MiddlewareHandler<AppEnv> {
  const recordUse = createLastUsedRecorder(deps);
  return async (c, next) => {
    const header = c.req.header("authorization");
    const token = header?.startsWith("Bearer ") ? header.slice(7).trim() : undefined;
    if (!token) throw unauthorized();
    const principal = await principalFor(deps, token);
    if (!principal) throw unauthorized();
    if (principal.kind === "organization" && principal.via === "api-token")
      recordUse(principal.actor);
    c.set("principal", principal);
    await next();
  };
}

/** API tokens' `last_used_at`, written at most once a minute per token and replica, off the request path. */
function createLastUsedRecorder(deps: AppDeps): (tokenId: string) => void {
  const INTERVAL_MS = 60_000;
  const lastWritten = new Map<string, number>();
  return (tokenId) => {
    const now = deps.clock.now();
    if (now.getTime() - (lastWritten.get(tokenId) ?? 0) < INTERVAL_MS) return;
    lastWritten.set(tokenId, now.getTime());
    deps.database.db
      .update(apiTokens)
      .set({ lastUsedAt: now })
      .where(eq(apiTokens.id, tokenId))
      .catch((error: unknown) => {
        deps.logger.warn("could not record token use", {
          tokenId,
          error: error instanceof Error ? error.name : "unknown",
        });
      });
  };
}

async function principalFor(deps: AppDeps, token: string): Promise<Principal | undefined> {
  const kind = tokenKind(token);
  if (kind === "operator") {
    const hash = hashToken(token);
    const match = deps.settings.operatorTokenHashes.find((stored) =>
      verifyTokenHash(token, stored),
    );
    return match ? { kind: "operator", actor: `operator:${hash.slice(0, 12)}` } : undefined;
  }
  if (kind === "organization") {
    const [row] = await deps.database.db
      .select({ id: apiTokens.id, organizationId: apiTokens.organizationId, role: apiTokens.role })
      .from(apiTokens)
      .where(and(eq(apiTokens.tokenHash, hashToken(token)), isNull(apiTokens.revokedAt)))
      .limit(1);
    if (!row) return undefined;
    return {
      kind: "organization",
      organizationId: row.organizationId,
      role: row.role,
      actor: row.id,
      via: "api-token",
    };
  }
  if (deps.oidc && token.split(".").length === 3) {
    const identity = await deps.oidc.verify(token);
    if (!identity) return undefined;
    const [org] = await deps.database.db
      .select({ id: organizations.id })
      .from(organizations)
      .where(eq(organizations.id, identity.organizationId))
      .limit(1);
    if (!org) return undefined;
    return {
      kind: "organization",
      organizationId: org.id,
      role: identity.role,
      actor: `oidc:${identity.subject}`,
      via: "oidc",
    };
  }
  return undefined;
}
