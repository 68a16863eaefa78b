import { z } from "@hono/zod-openapi";
import { nameSchema, referenceSchema } from "../text-fields";

export const connectionStatusSchema = z.enum(["active", "error", "revoked"]);

export const connectionMethodKindSchema = z.enum([
  "api-key",
  "oauth2-authorization-code",
  "oauth2-client-credentials",
  "github-app-installation",
]);

/** A connection as the API shows it: everything but its secrets (SPEC §2 Connection). */
export const connectionSchema = z
  .object({
    id: z.string(),
    targetKey: z.string(),
    variantId: z.string(),
    methodId: z.string(),
    methodKind: connectionMethodKindSchema,
    displayName: z.string(),
    status: connectionStatusSchema,
    config: z.record(z.string(), z.unknown()),
    externalSubjectId: z.string().nullable(),
    credentialVersion: z.number().int(),
    credentialExpiresAt: z.string().nullable(),
    lastError: z.string().nullable(),
    secretFields: z
      .array(z.string())
      .describe("names of the secret fields the current credential holds (never their values)"),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Connection");

export type ConnectionResponse = z.infer<typeof connectionSchema>;

/** Non-secret connection config; its shape is the connection method's `configSchema`. */
const connectionConfigSchema = z.record(z.string(), z.unknown());

/** Secret inputs by field name; write-only. The method's `secretFields` say which names it takes. */
const secretsSchema = z.record(z.string(), z.string().min(1).max(16_384));

export const createConnectionBody = z
  .strictObject({
    targetKey: referenceSchema,
    methodId: referenceSchema,
    displayName: nameSchema,
    config: connectionConfigSchema.optional(),
    secrets: secretsSchema,
  })
  .openapi("CreateConnection");

export type CreateConnectionInput = z.infer<typeof createConnectionBody>;

export const updateConnectionBody = z
  .strictObject({
    displayName: nameSchema.optional(),
    config: connectionConfigSchema.optional(),
  })
  .refine((body) => body.displayName !== undefined || body.config !== undefined, {
    message: "give displayName, config or both",
  })
  .openapi("UpdateConnection");

export type UpdateConnectionInput = z.infer<typeof updateConnectionBody>;

export const rotateSecretBody = z.strictObject({ secrets: secretsSchema }).openapi("RotateSecret");

export const credentialTestResultSchema = z
  .object({
    ok: z
      .boolean()
      .nullable()
      .describe("null when the provider has no credential test; a failed test changes nothing"),
    message: z.string(),
  })
  .openapi("CredentialTestResult");

export const resourceListSchema = z
  .object({ items: z.array(z.object({ id: z.string(), label: z.string() })) })
  .openapi("ConnectionResources");

export const listConnectionsQuery = z.object({
  targetKey: z
    .string()
    .min(1)
    .optional()
    .openapi({ param: { name: "targetKey", in: "query" } }),
  status: connectionStatusSchema.optional().openapi({ param: { name: "status", in: "query" } }),
});

export const connectionIdParams = z.object({
  id: z.string().openapi({ param: { name: "id", in: "path" } }),
});

export const resourceParams = connectionIdParams.extend({
  kind: z
    .string()
    .min(1)
    .openapi({ param: { name: "kind", in: "path" } }),
});
