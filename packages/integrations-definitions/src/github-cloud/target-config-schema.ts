import { joinUrl } from "@keyway/integrations-core";
import { z } from "zod";
import {
  type GitHubTargetConfig,
  githubAppSlugSchema,
  githubBaseUrlSchema,
  reportApiEndpointsOnWebRoot,
} from "../github/target-config";

/**
 * GitHub.com. The empty config (the registry-synced default target) resolves to the public hosts.
 * Overrides exist for GitHub Enterprise Cloud with data residency (`https://SUBDOMAIN.ghe.com`,
 * API `https://api.SUBDOMAIN.ghe.com`). GraphQL then defaults to `{apiBaseUrl}/graphql` and
 * uploads to the API host with `api.` replaced by `uploads.` — the shape of both
 * `api.github.com`/`uploads.github.com` and the `upload_url`s GHE.com returns
 * (`https://uploads.SUBDOMAIN.ghe.com/repos/...`). An API URL of any other shape gets no uploads
 * route unless `uploadsBaseUrl` is set.
 */
export const githubCloudTargetConfigSchema = z
  .strictObject({
    webBaseUrl: githubBaseUrlSchema.default("https://github.com"),
    apiBaseUrl: githubBaseUrlSchema.default("https://api.github.com"),
    graphqlUrl: githubBaseUrlSchema.optional(),
    uploadsBaseUrl: githubBaseUrlSchema.optional(),
    appSlug: githubAppSlugSchema.optional(),
  })
  .transform((input, ctx): GitHubTargetConfig => {
    const uploadsBaseUrl = input.uploadsBaseUrl ?? uploadsHostBesideApi(input.apiBaseUrl);
    const config: GitHubTargetConfig = {
      edition: "cloud",
      webBaseUrl: input.webBaseUrl,
      apiBaseUrl: input.apiBaseUrl,
      graphqlUrl: input.graphqlUrl ?? joinUrl(input.apiBaseUrl, "graphql"),
      ...(uploadsBaseUrl !== undefined ? { uploadsBaseUrl } : {}),
      ...(input.appSlug !== undefined ? { appSlug: input.appSlug } : {}),
    };
    reportApiEndpointsOnWebRoot(config, ctx);
    return config;
  });

function uploadsHostBesideApi(apiBaseUrl: string): string | undefined {
  const url = new URL(apiBaseUrl);
  if (url.pathname !== "/" || !url.hostname.startsWith("api.")) return undefined;
  url.hostname = `uploads.${url.hostname.slice("api.".length)}`;
  return url.origin;
}
