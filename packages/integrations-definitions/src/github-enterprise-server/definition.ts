import { createGitHubDefinition } from "../github/create-github-definition";
import { githubEnterpriseServerTargetConfigSchema } from "./target-config-schema";

/** A self-hosted GitHub Enterprise Server; operators add one target per server. */
export const githubEnterpriseServerDefinition = createGitHubDefinition({
  variantId: "github-enterprise-server",
  displayName: "GitHub Enterprise Server",
  description:
    "Git over HTTPS and the API of a GitHub Enterprise Server for bound repositories, with a personal access token or a GitHub App installation.",
  docsUrl: "https://docs.github.com/en/enterprise-server@latest/rest",
  targetConfigSchema: githubEnterpriseServerTargetConfigSchema,
});
