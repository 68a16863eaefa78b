import {
  type BindingContext,
  type CompileBindingOutput,
  joinUrl,
  type RouteDraft,
  splitBaseUrl,
  type WorkspaceSourceDraft,
} from "@keyway/integrations-core";
import type { GitHubBindingConfig } from "./binding-config-schema";
import { gitPathPrefixes, parseRepository, type RepositoryRef } from "./repository";
import { apiEndpointEntries, type GitHubTargetConfig } from "./target-config";

export const GITHUB_INSTALLATION_TOKEN_RESOLVER = "github_app_installation_token";

/**
 * Basic-auth username for token-based HTTPS git: GitHub documents it for installation tokens and
 * ignores the username when the password is a personal access token, so one value serves both.
 */
export const GIT_TOKEN_USERNAME = "x-access-token";

/**
 * Compiles a GitHub binding (SPEC §5):
 * - one Basic-auth route on the web host for the git smart-HTTP endpoints of the bound
 *   repositories only (see `gitPathPrefixes` for why not `/owner/repo` as a whole);
 * - one bearer route per API origin: on GitHub.com all of `api.github.com` (REST and GraphQL)
 *   and all of `uploads.github.com`; on GHES `/api/v3`, `/api/graphql` and `/api/uploads` on
 *   the server's host. API routes are not narrowed per repository — REST paths are too varied
 *   and GraphQL names repositories in the body — so an installation token narrowed to the
 *   binding's repositories and permissions is what confines API access; a PAT reaches whatever
 *   its own scopes allow;
 * - one git workspace source per repository, checked out at the repository's name (or
 *   `owner/name` when two bound repositories share a name).
 *
 * Since API routes cover the whole API, a profile can bind one GitHub connection per target;
 * a second binding to the same target is a route conflict.
 */
export function compileGitHubBinding(
  ctx: BindingContext<GitHubTargetConfig, unknown, GitHubBindingConfig>,
): CompileBindingOutput {
  const { config } = ctx.target;
  const repositories = ctx.binding.config.repositories
    .map(parseRepository)
    .filter((r): r is RepositoryRef => r !== undefined);
  const credential =
    ctx.connection.methodKind === "github-app-installation"
      ? { secretType: "github_installation_token", resolver: GITHUB_INSTALLATION_TOKEN_RESOLVER }
      : { secretType: "api_key" };

  const web = splitBaseUrl(config.webBaseUrl);
  const push = ctx.binding.config.permissions.contents === "write";
  const routes: RouteDraft[] = [
    {
      match: {
        hosts: [web.host],
        methods: ["GET", "POST"],
        pathPrefixes: repositories.flatMap((r) => gitPathPrefixes(web.pathPrefix, r, { push })),
      },
      upstream: { baseUrl: web.origin },
      auth: { type: "basic", name: "authorization", username: GIT_TOKEN_USERNAME },
      credential,
    },
  ];

  const apiPrefixesByOrigin = new Map<string, { host: string; prefixes: Set<string> }>();
  for (const [, url] of apiEndpointEntries(config)) {
    const parts = splitBaseUrl(url);
    const entry = apiPrefixesByOrigin.get(parts.origin) ?? {
      host: parts.host,
      prefixes: new Set(),
    };
    entry.prefixes.add(parts.pathPrefix);
    apiPrefixesByOrigin.set(parts.origin, entry);
  }
  for (const [origin, { host, prefixes }] of apiPrefixesByOrigin) {
    routes.push({
      match: {
        hosts: [host],
        // A root prefix covers every path; the route then matches the host as a whole.
        ...(prefixes.has("/") ? {} : { pathPrefixes: [...prefixes] }),
      },
      upstream: { baseUrl: origin },
      auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
      credential,
    });
  }

  const nameCounts = new Map<string, number>();
  for (const r of repositories) {
    const key = r.name.toLowerCase();
    nameCounts.set(key, (nameCounts.get(key) ?? 0) + 1);
  }
  const workspaceSources: WorkspaceSourceDraft[] = repositories.map((r) => ({
    kind: "git",
    url: joinUrl(config.webBaseUrl, `${r.owner}/${r.name}.git`),
    path: (nameCounts.get(r.name.toLowerCase()) ?? 0) > 1 ? `${r.owner}/${r.name}` : r.name,
  }));

  return { routes, workspaceSources };
}
