import { z } from "@hono/zod-openapi";
import { nameSchema } from "../text-fields";

export const organizationSchema = z
  .object({ id: z.string(), name: z.string(), createdAt: z.string() })
  .openapi("Organization");

export const roleSchema = z.enum(["admin", "member", "viewer"]);

export const apiTokenSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    role: roleSchema,
    createdAt: z.string(),
    lastUsedAt: z.string().nullable(),
    revokedAt: z.string().nullable(),
  })
  .openapi("ApiToken");

/** Returned once, when a token is created; the token itself is never shown again. */
export const createdApiTokenSchema = apiTokenSchema
  .extend({ token: z.string().describe("bearer token, shown only in this response") })
  .openapi("CreatedApiToken");

export const createOrganizationBody = z
  .strictObject({
    name: nameSchema,
    adminTokenName: nameSchema.default("initial admin"),
  })
  .openapi("CreateOrganization");

export const createApiTokenBody = z
  .strictObject({ name: nameSchema, role: roleSchema })
  .openapi("CreateApiToken");

export const idParams = z.object({ id: z.string().openapi({ param: { name: "id", in: "path" } }) });
