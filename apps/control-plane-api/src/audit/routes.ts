import { createRoute, type z } from "@hono/zod-openapi";
import { requireRole } from "../auth/principal";
import type { AppDeps } from "../deps";
import { createRouter, errorResponses } from "../router";
import { auditListQuery, auditPageSchema, auditVerificationSchema } from "./schemas";
import { auditEntryOrganization, listAudit, verifyAuditChain } from "./service";

const json = <T extends z.ZodType>(schema: T) => ({ content: { "application/json": { schema } } });
const security = [{ bearer: [] }];

/** `/v1/audit`: an organization's entries, and verification of the whole hash chain (SPEC §6.6). */
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
        "Recomputes the whole hash chain (every organization's entries and the deployment's). " +
        "Organization admins and operators.",
      responses: {
        200: { description: "Verification result", ...json(auditVerificationSchema) },
        ...errorResponses,
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      if (principal.kind !== "operator") requireRole(principal, "admin");
      const result = await verifyAuditChain(db);
      if (!result.firstInvalid)
        return c.json({ ok: result.ok, checkedEntries: result.checkedEntries }, 200);
      const { seq, id, reason } = result.firstInvalid;
      // The chain spans every organization: which entry broke is another tenant's business
      // unless the caller is an operator or the entry is their own organization's.
      const visible =
        principal.kind === "operator" ||
        (await auditEntryOrganization(db, seq)) === principal.organizationId;
      return c.json(
        {
          ok: result.ok,
          checkedEntries: result.checkedEntries,
          firstInvalid: visible ? { reason, seq, id } : { reason },
        },
        200,
      );
    },
  );

  return router;
}
