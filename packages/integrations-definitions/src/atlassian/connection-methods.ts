import type { ConnectionMethod } from "@keyway/integrations-core";
import { z } from "zod";

/** The Atlassian account that owns a personal API token: the Basic auth user name. */
export const atlassianApiTokenConfigSchema = z.strictObject({
  email: z.email(),
});

export type AtlassianApiTokenConfig = z.infer<typeof atlassianApiTokenConfigSchema>;

/**
 * OAuth 2.0 (3LO) through the operator's app, and the two non-interactive mechanisms the Rovo MCP Server accepts (when the organization admin
 * allows API-token authentication): a personal API token as
 * `Authorization: Basic base64(email:api_token)`, or a service account API key as
 * `Authorization: Bearer <api_key>`.
 */
export const atlassianConnectionMethods = [
  {
    id: "api-token",
    label: "Personal API token",
    kind: "api-key",
    configSchema: atlassianApiTokenConfigSchema,
    configForm: { email: { label: "Atlassian account email", widget: "text" } },
    secretFields: ["apiToken"],
  },
  {
    id: "service-account",
    label: "Service account API key",
    kind: "api-key",
    secretFields: ["apiKey"],
  },
  {
    id: "oauth2",
    label: "OAuth 2.0 (3LO)",
    kind: "oauth2-authorization-code",
  },
] as const satisfies readonly ConnectionMethod[];
