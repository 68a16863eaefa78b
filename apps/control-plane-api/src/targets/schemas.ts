import { z } from "@hono/zod-openapi";
import { descriptionSchema, nameSchema, referenceSchema } from "../text-fields";

/**
 * Shapes of the targets API (SPEC §6.2). Targets are addressed by `targetKey` in URLs: it is the
 * operator-chosen, unique, stable name (also used in webhook URLs), so operators never need to
 * look up an id first. The `tgt_…` id is still returned for references from other resources.
 */

/** Same rule as `[targets.<key>]` in keyway.toml: the key appears in URLs. */
export const targetKeySchema = z
  .string()
  .regex(
    /^[a-z][a-z0-9-]{0,62}$/,
    "expected lower-case letters, digits and '-', starting with a letter (at most 63)",
  );

const jsonObject = z.record(z.string(), z.unknown());
const descriptionText = descriptionSchema.min(1);

export const fieldIssueSchema = z.object({
  field: z.string(),
  code: z.string(),
  message: z.string(),
});

export const targetKindSchema = z.enum(["agent", "git", "connector"]);

/** What operators see: everything but secret values (only the names of the secret fields set). */
export const operatorTargetSchema = z
  .object({
    id: z.string(),
    targetKey: z.string(),
    familyId: z.string(),
    variantId: z.string(),
    kind: targetKindSchema,
    enabled: z.boolean(),
    source: z.enum(["registry", "config", "api"]),
    displayName: z.string().nullable().describe("operator override; null → the definition's"),
    description: z.string().nullable().describe("operator override; null → the definition's"),
    definition: z
      .object({ displayName: z.string(), description: z.string(), docsUrl: z.string() })
      .nullable()
      .describe("null when this deployment no longer has the target's definition"),
    config: jsonObject.describe("the operator's config as written (defaults applied at use)"),
    configValid: z.boolean(),
    configIssues: z.array(fieldIssueSchema),
    secretFields: z.array(z.string()).describe("names of the secret fields set; never values"),
    health: jsonObject.nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("OperatorTarget");

/** The detail view adds the forms the console renders (`GET /v1/operator/targets/{targetKey}`). */
export const operatorTargetDetailSchema = operatorTargetSchema
  .extend({
    forms: z
      .object({
        config: z.record(z.string(), z.unknown()),
        secrets: z.record(z.string(), z.unknown()),
      })
      .nullable()
      .describe("JSON Schema forms (with x-keyway-ui) of the target's config and secrets"),
  })
  .openapi("OperatorTargetDetail");

export const createTargetBody = z
  .strictObject({
    targetKey: targetKeySchema,
    variantId: referenceSchema,
    displayName: nameSchema.optional(),
    description: descriptionText.optional(),
    enabled: z.boolean().default(true),
    config: jsonObject.default({}),
    secrets: z.record(z.string(), z.string().min(1)).optional(),
  })
  .openapi("CreateTarget");

export const updateTargetBody = z
  .strictObject({
    displayName: nameSchema.nullable().optional(),
    description: descriptionText.nullable().optional(),
    config: jsonObject.optional(),
  })
  .refine((body) => Object.keys(body).length > 0, "give at least one field to change")
  .openapi("UpdateTarget");

export const replaceTargetSecretsBody = z
  .strictObject({
    /** The complete new secret set; `{}` removes every secret. */
    secrets: z.record(z.string(), z.string().min(1)),
  })
  .openapi("ReplaceTargetSecrets");

export const targetSecretsResultSchema = z
  .object({ targetKey: z.string(), secretFields: z.array(z.string()) })
  .openapi("TargetSecretFields");

const jsonSchemaForm = jsonObject.describe("JSON Schema (2020-12, input side) with x-keyway-ui");

export const publicConnectionMethodSchema = z
  .object({
    id: z.string(),
    label: z.string(),
    kind: z.enum([
      "api-key",
      "oauth2-authorization-code",
      "oauth2-client-credentials",
      "github-app-installation",
    ]),
    secretFields: z.array(z.string()),
    configForm: jsonSchemaForm,
  })
  .openapi("TargetConnectionMethod");

/** What organization users see of an enabled target: definition metadata and forms, no config. */
export const publicTargetSchema = z
  .object({
    targetKey: z.string(),
    displayName: z.string(),
    description: z.string(),
    kind: targetKindSchema,
    familyId: z.string(),
    variantId: z.string(),
    logoKey: z.string(),
    docsUrl: z.string(),
    connectionMethods: z.array(publicConnectionMethodSchema),
    bindingForm: jsonSchemaForm,
  })
  .openapi("Target");

export const targetKeyParams = z.object({
  targetKey: z.string().openapi({ param: { name: "targetKey", in: "path" } }),
});

export type OperatorTarget = z.infer<typeof operatorTargetSchema>;
export type PublicTarget = z.infer<typeof publicTargetSchema>;
export type CreateTargetInput = z.infer<typeof createTargetBody>;
export type UpdateTargetInput = z.infer<typeof updateTargetBody>;
