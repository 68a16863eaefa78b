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

/** RFC 6749 §3.3 scope-token: printable ASCII without space, `"` or `\`. */
const scopeSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, "a scope is a token without spaces, quotes or backslashes");

export const startOAuth2Body = z
  .strictObject({
    targetKey: referenceSchema,
    methodId: referenceSchema,
    displayName: nameSchema,
    scopes: z
      .array(scopeSchema)
      .min(1)
      .max(50)
      .optional()
      .describe("scopes to ask for instead of the target's defaults"),
    redirectAfter: z
      .url({ protocol: /^https?$/ })
      .max(2000)
      .optional()
      .describe(
        "where the browser goes once the flow ends: this API's origin or one of api.allowed_redirect_origins",
      ),
    connectionId: referenceSchema
      .optional()
      .describe("reconnect this connection (same target and method) instead of creating one"),
  })
  .openapi("StartOAuth2");

export type StartOAuth2Input = z.infer<typeof startOAuth2Body>;

export const oauth2StartedSchema = z
  .object({
    authorizationUrl: z.string().describe("send the user's browser here"),
    expiresAt: z.string().describe("the flow must complete before this (10 minutes)"),
  })
  .openapi("OAuth2Started");

/** What the provider sends back (RFC 6749 §4.1.2, §4.1.2.1); unknown parameters are ignored. */
export const oauth2CallbackQuery = z.object({
  state: z
    .string()
    .min(1)
    .max(512)
    .openapi({ param: { name: "state", in: "query" } }),
  code: z
    .string()
    .min(1)
    .max(4096)
    .optional()
    .openapi({ param: { name: "code", in: "query" } }),
  error: z
    .string()
    .min(1)
    .max(512)
    .optional()
    .openapi({ param: { name: "error", in: "query" } }),
  error_description: z
    .string()
    .max(2048)
    .optional()
    .openapi({ param: { name: "error_description", in: "query" } }),
});

export const oauth2CompletedSchema = z
  .object({
    connection: connectionSchema,
    reconnected: z.boolean().describe("an existing connection was re-authorised (same id)"),
  })
  .openapi("OAuth2Completed");
