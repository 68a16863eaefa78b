import { createGitHubDefinition } from "../github/create-github-definition";
import { githubCloudTargetConfigSchema } from "./target-config-schema";

/** GitHub.com (and GitHub Enterprise Cloud, including data-residency hosts via URL overrides). */
export const githubCloudDefinition = createGitHubDefinition({
  variantId: "github-cloud",
  displayName: "GitHub",
  description:
    "Git over HTTPS and the GitHub API for bound repositories, with a personal access token or a GitHub App installation.",
  docsUrl: "https://docs.github.com/en/rest",
  targetConfigSchema: githubCloudTargetConfigSchema,
});
