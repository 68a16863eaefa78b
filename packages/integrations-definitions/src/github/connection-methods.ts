import type { ConnectionMethod } from "@keyway/integrations-core";

/**
 * How a user connects to a GitHub target. A GitHub App installation connection stores the
 * installation id as its external subject id (verified against the installing user, see
 * `verifyInstallationOwnership`); its tokens are minted per request by the
 * `github_app_installation_token` resolver, so the connection itself holds no secret.
 */
export const githubConnectionMethods = [
  {
    id: "personal-access-token",
    label: "Personal access token",
    kind: "api-key",
    secretFields: ["token"],
  },
  { id: "github-app", label: "GitHub App installation", kind: "github-app-installation" },
] as const satisfies readonly ConnectionMethod[];
