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

export const planDigestParams = z.object({
  digest: z
    .string()
    .regex(/^[0-9a-f]{64}$/, "a plan digest is 64 lower-case hex digits")
    .openapi({ param: { name: "digest", in: "path" } }),
});

/** The compiled plan as stored (packages/integrations-core `compiledPlanSchema`). */
export const compiledPlanDocument = z
  .record(z.string(), z.unknown())
  .openapi("CompiledRuntimePlan");
