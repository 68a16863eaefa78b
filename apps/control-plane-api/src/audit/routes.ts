import { createRoute, type z } from "@hono/zod-openapi";
import { requireRole } from "../auth/principal";
import type { AppDeps } from "../deps";
import { createRouter, errorResponses } from "../router";
import { auditListQuery, auditPageSchema, auditVerificationSchema } from "./schemas";
import { listAudit, verifyAuditChain } from "./service";

const json = <T extends z.ZodType>(schema: T) => ({ content: { "application/json": { schema } } });
const security = [{ bearer: [] }];

/** `/v1/audit`: an organization's entries, and verification of the hash chain (SPEC §6.6). */
export function auditRoutes(deps: AppDeps) {
  const router = createRouter();
  const { db } = deps.database;

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/audit",
      tags: ["audit"],
      security,
      description: "The caller's organization's audit entries, newest first.",
      request: { query: auditListQuery },
      responses: {
        200: { description: "A page of entries", ...json(auditPageSchema) },
        ...errorResponses,
      },
    }),
    async (c) => {
      const principal = requireRole(c.get("principal"), "viewer");
      const { limit, before } = c.req.valid("query");
      const rows = await listAudit(db, principal.organizationId, {
        limit,
        ...(before !== undefined ? { beforeSeq: before } : {}),
      });
      return c.json(
        {
          items: rows.map((row) => ({
            seq: row.seq,
            id: row.id,
            actor: row.actor,
            action: row.action,
            subjectType: row.subjectType,
            subjectId: row.subjectId,
            traceId: row.traceId,
            details: row.details,
            createdAt: row.createdAt.toISOString(),
            hash: row.hash,
          })),
          nextBefore: rows.length === limit ? (rows.at(-1)?.seq ?? null) : null,
        },
        200,
      );
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/audit/verify",
      tags: ["audit"],
      security,
      description:
        "Recomputes the hash chain. Operators verify the whole chain (every organization's " +
        "entries and the deployment's); an organization admin verifies the organization's own " +
        "entries (hash and link to the entry before each) and sees figures for those only.",
      responses: {
        200: { description: "Verification result", ...json(auditVerificationSchema) },
        ...errorResponses,
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      if (principal.kind !== "operator") requireRole(principal, "admin");
      const operator = principal.kind === "operator";
      const result = await verifyAuditChain(
        db,
        operator ? {} : { organizationId: principal.organizationId },
      );
      const scope: "deployment" | "organization" = operator ? "deployment" : "organization";
      return c.json({ scope, ...result }, 200);
    },
  );

  return router;
}
