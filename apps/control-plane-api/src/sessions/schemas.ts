import { z } from "@hono/zod-openapi";
import {
  agentRuntimeSchema,
  planEnvSchema,
  planFileSchema,
  planProcessSchema,
  workspaceSourceSchema,
} from "@keyway/integrations-core";
import { referenceSchema } from "../text-fields";

export const sessionStatusSchema = z.enum(["active", "revoked", "expired"]);

/** A session as listed: never its token. */
export const sessionSchema = z
  .object({
    id: z.string(),
    profileId: z.string(),
    profileVersionId: z.string(),
    profileVersion: z.number().int(),
    planDigest: z.string(),
    status: sessionStatusSchema,
    tokenExpiresAt: z.string(),
    expiresAt: z.string(),
    revokedAt: z.string().nullable(),
    createdBy: z.string(),
    createdAt: z.string(),
  })
  .openapi("SandboxSession");

export const startSessionBody = z
  .strictObject({
    profileId: referenceSchema,
    /** Profile version to run; default: the profile's latest version. */
    version: z.number().int().min(1).max(2_147_483_647).optional(),
  })
  .openapi("StartSandboxSession");

const proxyEnvSchema = z
  .record(z.string(), z.string())
  .describe(
    "HTTP_PROXY/HTTPS_PROXY (and lower-case forms) with the session token as proxy password, NO_PROXY",
  );

export const sessionTokenSchema = z.object({
  id: z.string(),
  token: z.string().describe("session token (JWT) for the gateway; keep it inside the sandbox"),
  tokenExpiresAt: z.string(),
  expiresAt: z.string(),
  planDigest: z.string(),
  proxyUrl: z.string().describe("the gateway's proxy URL, without credentials"),
  proxyEnv: proxyEnvSchema,
});

export const startedSessionSchema = sessionTokenSchema
  .extend({
    profileId: z.string(),
    profileVersionId: z.string(),
    profileVersion: z.number().int(),
    caCertPem: z.string().describe("the gateway CA the sandbox must trust"),
    caEnvVars: z
      .array(z.string())
      .describe(
        "variables the sandbox sets to the path where it wrote `caCertPem` (SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, ...)",
      ),
    files: z.array(planFileSchema),
    env: z.array(planEnvSchema),
    processes: z.array(planProcessSchema),
    workspaceSources: z.array(workspaceSourceSchema),
    agentRuntimes: z.array(agentRuntimeSchema),
  })
  .openapi("StartedSandboxSession");

export type StartedSandboxSession = z.infer<typeof startedSessionSchema>;

export const refreshedSessionSchema = sessionTokenSchema.openapi("RefreshedSandboxSession");

export const sessionParams = z.object({
  id: z.string().openapi({ param: { name: "id", in: "path" } }),
});

export const listSessionsQuery = z.object({
  profileId: z
    .string()
    .min(1)
    .optional()
    .openapi({ param: { name: "profileId", in: "query" } }),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(500)
    .default(100)
    .openapi({ param: { name: "limit", in: "query" }, type: "integer" }),
  /** Cursor: the `nextCursor` of the previous page (sessions come newest first). */
  before: z
    .string()
    .min(1)
    .optional()
    .openapi({ param: { name: "before", in: "query" } }),
});
