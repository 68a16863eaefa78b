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
  organizationId: z
    .string()
    .min(1)
    .max(64)
    .optional()
    .openapi({
      param: { name: "organizationId", in: "query" },
      description:
        "operators: only this organization's entries (default: every entry of the deployment); " +
        "an organization token may name only its own",
    }),
});

export const auditEntrySchema = z
  .object({
    seq: z.number().int(),
    id: z.string(),
    organizationId: z
      .string()
      .nullable()
      .describe("the organization the entry belongs to; null for deployment-wide entries"),
    actor: z.string(),
    action: z.string(),
    subjectType: z.string(),
    subjectId: z.string(),
    traceId: z.string().nullable(),
    details: z.record(z.string(), z.unknown()),
    createdAt: z.string(),
    chainSeq: z
      .number()
      .int()
      .nullable()
      .describe("position in the organization's chain; null until the entry is sealed"),
    hash: z.string().nullable().describe("null until the entry is sealed (within a second)"),
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
      .describe("`deployment` for operators (every chain), `organization` for its own chain"),
    ok: z.boolean(),
    checkedEntries: z
      .number()
      .int()
      .describe("sealed entries in scope verified (before the first problem, if any)"),
    unsealedEntries: z
      .number()
      .int()
      .describe("entries in scope recorded but not sealed yet (not checked)"),
    firstInvalid: z
      .object({
        reason: z.enum([
          "hash_mismatch",
          "broken_link",
          "checkpoint_head_missing",
          "checkpoint_invalid",
        ]),
        chainSeq: z.number().int().describe("position in its chain of the entry or checkpoint"),
        seq: z.number().int().optional().describe("the entry's `seq`, for entry problems"),
        id: z.string().optional(),
      })
      .optional()
      .describe(
        "the first problem: an altered entry, a broken link (an entry before it removed or " +
          "altered), a checkpoint whose entry is gone (the newest entries removed), or a " +
          "checkpoint not validly signed",
      ),
  })
  .openapi("AuditVerification");
