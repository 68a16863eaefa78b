import { joinUrl } from "@keyway/integrations-core";
import { z } from "zod";
import {
  type GitHubTargetConfig,
  githubAppSlugSchema,
  githubBaseUrlSchema,
  reportApiEndpointsOnWebRoot,
} from "../github/target-config";

/**
 * GitHub Enterprise Server. Only the web URL is required (e.g. `https://ghe.example.com`); the
 * API lives on the same host under `/api/v3`, GraphQL at `/api/graphql` and release-asset uploads
 * at `/api/uploads` (GHES REST and GraphQL docs). Each can be overridden, e.g. for a server
 * behind a proxy that maps them elsewhere.
 *
 * There is no public default: a registry-synced default target with config `{}` does not parse
 * until an operator sets `webBaseUrl`.
 */
export const githubEnterpriseServerTargetConfigSchema = z
  .strictObject({
    webBaseUrl: githubBaseUrlSchema,
    apiBaseUrl: githubBaseUrlSchema.optional(),
    graphqlUrl: githubBaseUrlSchema.optional(),
    uploadsBaseUrl: githubBaseUrlSchema.optional(),
    appSlug: githubAppSlugSchema.optional(),
  })
  .transform((input, ctx): GitHubTargetConfig => {
    const config: GitHubTargetConfig = {
      edition: "enterprise-server",
      webBaseUrl: input.webBaseUrl,
      apiBaseUrl: input.apiBaseUrl ?? joinUrl(input.webBaseUrl, "api/v3"),
      graphqlUrl: input.graphqlUrl ?? joinUrl(input.webBaseUrl, "api/graphql"),
      uploadsBaseUrl: input.uploadsBaseUrl ?? joinUrl(input.webBaseUrl, "api/uploads"),
      ...(input.appSlug !== undefined ? { appSlug: input.appSlug } : {}),
    };
    reportApiEndpointsOnWebRoot(config, ctx);
    return config;
  });
