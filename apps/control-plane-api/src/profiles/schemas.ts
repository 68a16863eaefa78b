import { z } from "@hono/zod-openapi";
import { compiledPlanSchema, routeHostSchema } from "@keyway/integrations-core";
import { descriptionSchema, nameSchema, referenceSchema } from "../text-fields";

// ----- profiles ----------------------------------------------------------------------------------

export const profileSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    /** 0 until the first version is created. */
    latestVersion: z.number().int(),
    createdBy: z.string(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("SandboxProfile");

export const createProfileBody = z
  .strictObject({ name: nameSchema, description: descriptionSchema.optional() })
  .openapi("CreateSandboxProfile");

export const updateProfileBody = z
  .strictObject({
    name: nameSchema.optional(),
    description: descriptionSchema.nullable().optional(),
  })
  .refine((body) => body.name !== undefined || body.description !== undefined, {
    message: "give name or description",
  })
  .openapi("UpdateSandboxProfile");

export const profileParams = z.object({
  id: z.string().openapi({ param: { name: "id", in: "path" } }),
});

export const versionParams = profileParams.extend({
  v: z.coerce
    .number()
    .int()
    .min(1)
    .max(2_147_483_647)
    .openapi({ param: { name: "v", in: "path" }, type: "integer" }),
});

export const diffQuery = z.object({
  against: z.coerce
    .number()
    .int()
    .min(1)
    .max(2_147_483_647)
    .openapi({ param: { name: "against", in: "query" }, type: "integer" }),
});

// ----- versions ----------------------------------------------------------------------------------

export const bindingKindSchema = z.enum(["agent", "git", "connector"]);

export const bindingInputSchema = z
  .strictObject({
    connectionId: referenceSchema,
    kind: bindingKindSchema,
    /** Checked against the definition's binding config schema when the version is written. */
    config: z.record(z.string(), z.unknown()).default({}),
  })
  .openapi("BindingInput");

/** Hosts are compared case-insensitively, so they are stored lower-cased (SPEC §4.3). */
const egressHostSchema = z
  .string()
  .trim()
  .toLowerCase()
  .refine(
    (host) => routeHostSchema.safeParse(host).success,
    "host must be host[:port], without a scheme, path, wildcard or default port (80/443)",
  );

export const egressPolicyInputSchema = z
  .strictObject({
    default: z.enum(["allow", "deny"]),
    allowHosts: z.array(egressHostSchema).max(1000).default([]),
  })
  .openapi("EgressPolicy");

export const createVersionBody = z
  .strictObject({
    bindings: z.array(bindingInputSchema).max(500),
    /** Policy for hosts no route names; absent = the deployment's default policy. */
    egressPolicy: egressPolicyInputSchema.optional(),
  })
  .openapi("CreateProfileVersion");

export const bindingSchema = z
  .object({
    id: z.string(),
    connectionId: z.string(),
    kind: bindingKindSchema,
    config: z.record(z.string(), z.unknown()),
  })
  .openapi("Binding");

export const versionSummarySchema = z
  .object({
    id: z.string(),
    profileId: z.string(),
    version: z.number().int(),
    egressPolicy: z
      .object({ default: z.enum(["allow", "deny"]), allowHosts: z.array(z.string()) })
      .nullable(),
    /** Digest of the last successful compile of this version. */
    planDigest: z.string().nullable(),
    bindingCount: z.number().int(),
    createdBy: z.string(),
    createdAt: z.string(),
  })
  .openapi("ProfileVersionSummary");

export const versionSchema = versionSummarySchema
  .extend({ bindings: z.array(bindingSchema) })
  .openapi("ProfileVersion");

// ----- plans -------------------------------------------------------------------------------------

export const planResponseSchema = z
  .object({ digest: z.string(), plan: compiledPlanSchema })
  .openapi("CompiledPlan");

const capabilitySchema = z.object({
  host: z.string(),
  methods: z.union([z.array(z.string()), z.literal("any")]),
  pathPrefix: z.string(),
  excludeQuery: z.array(z.object({ name: z.string(), values: z.array(z.string()) })).optional(),
  connectionId: z.string().nullable(),
  auth: z.string(),
});
const keyedChangeSchema = z.object({
  added: z.array(z.string()),
  removed: z.array(z.string()),
  changed: z.array(z.string()),
});

export const planDiffResponseSchema = z
  .object({
    from: z.object({ version: z.number().int(), digest: z.string() }),
    to: z.object({ version: z.number().int(), digest: z.string() }),
    diff: z.object({
      identical: z.boolean(),
      capabilities: z.object({
        added: z.array(capabilitySchema),
        removed: z.array(capabilitySchema),
      }),
      mcpServers: keyedChangeSchema,
      files: keyedChangeSchema,
      env: keyedChangeSchema,
      egressPolicyChanged: z.boolean(),
    }),
  })
  .openapi("PlanDiff");

export type CreateVersionInput = z.infer<typeof createVersionBody>;
