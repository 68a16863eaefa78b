import { httpBaseUrlSchema, singleLineTextSchema } from "@keyway/integrations-core";
import { z } from "zod";

export const LINEAR_DEFAULT_API_URL = "https://api.linear.app/graphql";
export const LINEAR_DEFAULT_MCP_URL = "https://mcp.linear.app/mcp";
// linear.app/developers/oauth-2-0-authentication
export const LINEAR_DEFAULT_AUTHORIZATION_URL = "https://linear.app/oauth/authorize";
export const LINEAR_DEFAULT_TOKEN_URL = "https://api.linear.app/oauth/token";

/**
 * Linear scope names (`read`, `write`, `issues:create`, `comments:create`, `admin`, `app:*`...).
 * The authorize endpoint takes them comma-separated, so a scope must not hold a comma itself.
 */
const linearScopeSchema = z
  .string()
  .regex(/^[A-Za-z0-9:_.-]+$/, "scope holds letters, digits and : _ . - only");

export const linearTargetConfigSchema = z.strictObject({
  apiUrl: httpBaseUrlSchema.default(LINEAR_DEFAULT_API_URL),
  mcpUrl: httpBaseUrlSchema.default(LINEAR_DEFAULT_MCP_URL),
  /**
   * Also route Linear's deprecated SSE transport (`/sse` on the MCP host, beside `/mcp`) for MCP
   * clients that cannot speak streamable HTTP yet.
   */
  mcpLegacySse: z.boolean().default(true),
  authorizationUrl: httpBaseUrlSchema.default(LINEAR_DEFAULT_AUTHORIZATION_URL),
  tokenUrl: httpBaseUrlSchema.default(LINEAR_DEFAULT_TOKEN_URL),
  /** OAuth2 application client id; not secret, required only for the OAuth2 method. */
  clientId: singleLineTextSchema.min(1).optional(),
  scopes: z
    .array(linearScopeSchema)
    .min(1)
    .default(() => ["read", "write"]),
  /**
   * `app` makes Linear attribute changes to the application rather than the authorising user
   * (Linear's `actor` authorize parameter); absent means Linear's default, `user`.
   */
  actor: z.enum(["user", "app"]).optional(),
});

export type LinearTargetConfig = z.infer<typeof linearTargetConfigSchema>;
