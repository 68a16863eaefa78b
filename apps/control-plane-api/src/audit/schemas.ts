import { z } from "@hono/zod-openapi";

export const auditListQuery = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(500)
    .default(50)
    .openapi({ param: { name: "limit", in: "query" } }),
  before: z.coerce
    .number()
    .int()
    .min(1)
    .optional()
    .openapi({
      param: { name: "before", in: "query" },
      description: "only entries with a smaller `seq` (pass the previous page's `nextBefore`)",
    }),
});

export const auditEntrySchema = z
  .object({
    seq: z.number().int(),
    id: z.string(),
    actor: z.string(),
    action: z.string(),
    subjectType: z.string(),
    subjectId: z.string(),
    traceId: z.string().nullable(),
    details: z.record(z.string(), z.unknown()),
    createdAt: z.string(),
    hash: z.string(),
  })
  .openapi("AuditEntry");

export const auditPageSchema = z
  .object({
    items: z.array(auditEntrySchema),
    nextBefore: z.number().int().nullable().describe("`before` for the next (older) page"),
  })
  .openapi("AuditPage");

export const auditVerificationSchema = z
  .object({
    scope: z
      .enum(["deployment", "organization"])
      .describe("`deployment` for operators (the whole chain), `organization` for its own entries"),
    ok: z.boolean(),
    checkedEntries: z
      .number()
      .int()
      .describe("entries in scope verified (before the first invalid one, if any)"),
    firstInvalid: z
      .object({
        reason: z.enum(["hash_mismatch", "broken_link"]),
        seq: z.number().int(),
        id: z.string(),
      })
      .optional()
      .describe("the first entry in scope that fails"),
  })
  .openapi("AuditVerification");
