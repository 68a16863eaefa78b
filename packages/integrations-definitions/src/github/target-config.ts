import { httpBaseUrlSchema, splitBaseUrl, type TargetView } from "@keyway/integrations-core";
import { z } from "zod";
import type { GitHubTargetSecrets } from "./target-secret-schema";

/**
 * The resolved target config both GitHub variants parse into. Each variant's schema takes what an
 * operator writes (cloud: nothing; GHES: the web URL) and derives every endpoint, so the shared
 * compile, resolver, installation and webhook code reads one shape and never guesses a URL.
 *
 * The `edition` is derived, never written by an operator: it selects the few behaviours where
 * GitHub.com and GitHub Enterprise Server differ (install URL path, JWT issuer).
 */
export const githubTargetConfigSchema = z.strictObject({
  edition: z.enum(["cloud", "enterprise-server"]),
  /** Web host: git smart-HTTP, OAuth endpoints, app installation pages. */
  webBaseUrl: z.string(),
  /** REST API root (cloud `https://api.github.com`, GHES `https://HOST/api/v3`). */
  apiBaseUrl: z.string(),
  /** GraphQL endpoint (cloud `https://api.github.com/graphql`, GHES `https://HOST/api/graphql`). */
  graphqlUrl: z.string(),
  /** Release-asset uploads (cloud `https://uploads.github.com`, GHES `https://HOST/api/uploads`). */
  uploadsBaseUrl: z.string().optional(),
  /** The GitHub App's URL slug, for the installation page. Not a secret. */
  appSlug: z.string().optional(),
});

export type GitHubTargetConfig = z.infer<typeof githubTargetConfigSchema>;

/** A target as the control plane hands it to flows that need its secrets. */
export type GitHubTargetWithSecrets = TargetView<GitHubTargetConfig> & {
  secrets: GitHubTargetSecrets;
};

/**
 * An operator-given base URL (`httpBaseUrlSchema`: http(s), no query, fragment, credentials or
 * control characters). Normalized through `URL` (lower-case host, default port dropped) and
 * without a trailing `/`, so derived URLs and workspace source URLs are spelled one way.
 */
export const githubBaseUrlSchema = httpBaseUrlSchema.transform((value) =>
  new URL(value).href.replace(/\/+$/, ""),
);

/** GitHub App slugs are lower-case words joined by hyphens (they appear in `/apps/<slug>`). */
export const githubAppSlugSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]*$/, "app slug must be lower-case letters, digits and hyphens");

/**
 * Rejects an API endpoint that claims the whole web host: git smart-HTTP routes live on the web
 * host too, and a root API prefix there would overlap every repository route.
 */
export function reportApiEndpointsOnWebRoot(
  config: GitHubTargetConfig,
  ctx: z.RefinementCtx<unknown>,
): void {
  const web = splitBaseUrl(config.webBaseUrl);
  for (const [field, url] of apiEndpointEntries(config)) {
    const parts = splitBaseUrl(url);
    if (parts.host === web.host && parts.pathPrefix === "/") {
      ctx.issues.push({
        code: "custom",
        path: [field],
        input: url,
        message: "an API endpoint on the web host needs a path (the web host also serves git)",
      });
    }
  }
}

/** The API-side endpoints (bearer auth) of a target, by config field name. */
export function apiEndpointEntries(config: GitHubTargetConfig): [string, string][] {
  const entries: [string, string][] = [
    ["apiBaseUrl", config.apiBaseUrl],
    ["graphqlUrl", config.graphqlUrl],
  ];
  if (config.uploadsBaseUrl !== undefined) entries.push(["uploadsBaseUrl", config.uploadsBaseUrl]);
  return entries;
}
