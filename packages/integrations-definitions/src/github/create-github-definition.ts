import { defineIntegration } from "@keyway/integrations-core";
import type { z } from "zod";
import { githubAppInstallation } from "./app-installation";
import { githubBindingConfigSchema } from "./binding-config-schema";
import { compileGitHubBinding, GITHUB_INSTALLATION_TOKEN_RESOLVER } from "./compile-binding";
import { githubConnectionMethods } from "./connection-methods";
import { githubAppInstallationTokenResolver } from "./installation-token-resolver";
import { githubCredentialTest, githubResourceLister } from "./resources";
import type { GitHubTargetConfig } from "./target-config";
import { githubTargetSecretSchema } from "./target-secret-schema";
import { validateGitHubBinding } from "./validate-binding";
import { githubWebhook } from "./webhook";

export interface GitHubVariant<TC extends z.ZodType<GitHubTargetConfig>> {
  variantId: string;
  displayName: string;
  description: string;
  docsUrl: string;
  targetConfigSchema: TC;
}

/**
 * Builds a GitHub-family definition (SPEC §5 "github"). The variants differ only in their target
 * config schema, which resolves to the shared `GitHubTargetConfig` (its `edition` drives the few
 * behaviours that differ); everything else is shared.
 */
export function createGitHubDefinition<TC extends z.ZodType<GitHubTargetConfig>>(
  variant: GitHubVariant<TC>,
) {
  return defineIntegration({
    familyId: "github",
    variantId: variant.variantId,
    kind: "git",
    displayName: variant.displayName,
    description: variant.description,
    logoKey: "github",
    docsUrl: variant.docsUrl,

    targetConfigSchema: variant.targetConfigSchema,
    targetConfigForm: {
      webBaseUrl: { label: "Web URL", widget: "url", order: 1 },
      apiBaseUrl: { label: "REST API URL", widget: "url", order: 2, advanced: true },
      graphqlUrl: { label: "GraphQL URL", widget: "url", order: 3, advanced: true },
      uploadsBaseUrl: { label: "Uploads URL", widget: "url", order: 4, advanced: true },
      appSlug: {
        label: "GitHub App slug",
        help: "The app's URL name (github.com/apps/<slug>); needed for installation connections.",
        order: 5,
      },
    },
    targetSecretSchema: githubTargetSecretSchema,
    targetSecretForm: {
      appId: { label: "App ID", order: 1 },
      clientId: { label: "Client ID", order: 2 },
      clientSecret: { label: "Client secret", order: 3 },
      appPrivateKeyPem: { label: "App private key (PEM)", widget: "textarea", order: 4 },
      webhookSecret: { label: "Webhook secret", order: 5 },
    },

    connectionMethods: githubConnectionMethods,

    bindingConfigSchema: githubBindingConfigSchema,
    bindingForm: {
      repositories: {
        label: "Repositories",
        help: "owner/repo, one per entry.",
        widget: "list",
        order: 1,
      },
      permissions: {
        label: "Permissions",
        help: 'GitHub App permissions, e.g. { "contents": "write", "pull_requests": "write" }.',
        order: 2,
        advanced: true,
      },
    },

    validateBinding: validateGitHubBinding,
    compileBinding: compileGitHubBinding,
    credentialResolvers: {
      [GITHUB_INSTALLATION_TOKEN_RESOLVER]: githubAppInstallationTokenResolver,
    },
    webhook: githubWebhook,
    resources: githubResourceLister,
    credentialTest: githubCredentialTest,
    appInstallation: githubAppInstallation,
  });
}
