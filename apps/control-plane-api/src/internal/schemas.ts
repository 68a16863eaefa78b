import { z } from "@hono/zod-openapi";

export const resolveCredentialBody = z
  .strictObject({
    sessionId: z.string().min(1).max(128),
    routeId: z.string().min(1).max(512),
  })
  .openapi("ResolveCredential");

export const resolvedCredentialSchema = z
  .object({
    value: z.string().describe("the credential to inject; never logged or stored by gateways"),
    expiresAt: z
      .string()
      .nullable()
      .describe("ISO instant after which the value stops working; null = no known expiry"),
    credentialVersion: z.number().int(),
  })
  .openapi("ResolvedCredential");

/** Most resolutions one batch may carry: a gateway sends more in several requests. */
export const MAX_RESOLVE_BATCH_ITEMS = 256;

export const resolveCredentialBatchBody = z
  .strictObject({
    items: z
      .array(
        z.strictObject({
          sessionId: z.string().min(1).max(128),
          routeId: z.string().min(1).max(512),
          traceparent: z
            .string()
            .max(256)
            .optional()
            .describe(
              "W3C `traceparent` of the sandbox request that needs this credential: its audit " +
                "entry carries that trace id (an unreadable one is ignored, as in the header)",
            ),
        }),
      )
      .min(1)
      .max(MAX_RESOLVE_BATCH_ITEMS),
  })
  .openapi("ResolveCredentialBatch");

export const resolvedCredentialBatchSchema = z
  .object({
    results: z
      .array(
        z.union([
          resolvedCredentialSchema.extend({ status: z.literal(200) }),
          z.object({
            status: z.number().int().describe("what `POST .../resolve` would have answered"),
            error: z.object({ code: z.string(), message: z.string() }),
          }),
        ]),
      )
      .describe("one result per item, in order"),
  })
  .openapi("ResolvedCredentialBatch");

/** Most session ids one liveness request may carry: a gateway sends its sessions in chunks. */
export const MAX_LIVENESS_IDS = 1000;

/** Most plans one liveness request may ask for (the rest are fetched by digest). */
export const MAX_LIVENESS_PLANS = 256;

const planDigest = z.string().regex(/^[0-9a-f]{64}$/, "a plan digest is 64 lower-case hex digits");

export const sessionLivenessBody = z
  .strictObject({
    sessionIds: z.array(z.string().min(1).max(128)).min(1).max(MAX_LIVENESS_IDS),
    plans: z
      .array(planDigest)
      .max(MAX_LIVENESS_PLANS)
      .optional()
      .describe(
        "digests of plans the gateway lacks (its new sessions' plans): answered in `plans`, so " +
          "a new session costs one request for its liveness and plan together",
      ),
  })
  .openapi("SessionLivenessRequest");

export const sessionLivenessSchema = z
  .object({
    sessions: z.array(
      z.object({
        sessionId: z.string(),
        live: z.boolean().describe("neither revoked nor past its hard end; false for unknown ids"),
        expiresAt: z
          .string()
          .nullable()
          .describe("the session's hard end (how long to remember the answer); null when unknown"),
      }),
    ),
    plans: z
      .record(z.string(), z.record(z.string(), z.unknown()))
      .optional()
      .describe(
        "the plans asked for, by digest, as `GET /internal/v1/plans/{digest}` serves them; an " +
          "unknown digest is left out",
      ),
  })
  .openapi("SessionLiveness");

export const planDigestParams = z.object({
  digest: planDigest.openapi({ param: { name: "digest", in: "path" } }),
});

/** The compiled plan as stored (packages/integrations-core `compiledPlanSchema`). */
export const compiledPlanDocument = z
  .record(z.string(), z.unknown())
  .openapi("CompiledRuntimePlan");
