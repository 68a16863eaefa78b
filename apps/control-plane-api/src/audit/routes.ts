import { createRoute, type z } from "@hono/zod-openapi";
import { requireRole } from "../auth/principal";
import type { AppDeps } from "../deps";
import { notFound } from "../errors";
import { createRouter, errorResponses } from "../router";
import { auditListQuery, auditPageSchema, auditVerificationSchema } from "./schemas";
import { listAudit, verifyAuditChain } from "./service";

const json = <T extends z.ZodType>(schema: T) => ({ content: { "application/json": { schema } } });
const security = [{ bearer: [] }];

/** `/v1/audit`: entries (an organization's, or the deployment's for operators), and verification of the hash chains (SPEC §6.6). */
export function auditRoutes(deps: AppDeps) {
  const router = createRouter();

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/audit",
      tags: ["audit"],
      security,
      description:
        "Audit entries, newest first (in the order they were recorded): an organization token " +
        "sees its organization's; an operator sees every entry of the deployment, or one " +
        "organization's with `organizationId`. An entry recorded in the last fraction of a " +
        "second may not be sealed into the chain yet: its `chainSeq` and `hash` are null until it is.",
      request: { query: auditListQuery },
      responses: {
        200: { description: "A page of entries", ...json(auditPageSchema) },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = c.get("principal");
      const { limit, before, organizationId } = c.req.valid("query");
      let scope = organizationId;
      if (principal.kind !== "operator") {
        const member = requireRole(principal, "viewer");
        // Another organization's id reads as one that does not exist (tenancy, SPEC §10).
        if (organizationId !== undefined && organizationId !== member.organizationId) {
          throw notFound("organization");
        }
        scope = member.organizationId;
      }
      const rows = await listAudit(db, scope, {
        limit,
        ...(before !== undefined ? { beforeSeq: before } : {}),
      });
      return c.json(
        {
          items: rows.map((row) => ({
            seq: row.seq,
            id: row.id,
            organizationId: row.organizationId,
            actor: row.actor,
            action: row.action,
            subjectType: row.subjectType,
            subjectId: row.subjectId,
            traceId: row.traceId,
            details: row.details,
            createdAt: row.createdAt.toISOString(),
            chainSeq: row.chainSeq,
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
        "Seals pending entries, then recomputes the hash chains and checks their signed " +
        "checkpoints. Operators verify every chain (each organization's and the deployment's); " +
        "an organization admin verifies the organization's own chain and sees figures for it only.",
      responses: {
        200: { description: "Verification result", ...json(auditVerificationSchema) },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = c.get("principal");
      if (principal.kind !== "operator") requireRole(principal, "admin");
      const operator = principal.kind === "operator";
      // Entries committed before the request are checked, and the heads just sealed signed.
      await deps.auditSealer.sealNow({ checkpoint: true });
      const result = await verifyAuditChain(
        db,
        deps.keyRing,
        operator ? {} : { organizationId: principal.organizationId },
      );
      const scope: "deployment" | "organization" = operator ? "deployment" : "organization";
      return c.json({ scope, ...result }, 200);
    },
  );

  return router;
}
