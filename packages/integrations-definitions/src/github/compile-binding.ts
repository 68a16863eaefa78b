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
 * - one bearer route per API origin, limited to what the bound repositories need
 *   (`apiPathPrefixes`): REST under `{api}/repos/{owner}/{repo}`, uploads under
 *   `{uploads}/repos/{owner}/{repo}`, and the GraphQL endpoint. Anything else on the API host
 *   (another repository, `/user`, a tool's own update check such as Codex's
 *   `/repos/openai/codex/releases/latest`) is refused by the gateway, credential-free.
 *   GraphQL names repositories in its body, so there the installation token, narrowed to the
 *   binding's repositories and permissions, is what confines access; a PAT reaches whatever its
 *   own scopes allow;
 * - one git workspace source per repository, checked out at the repository's name (or
 *   `owner/name` when two bound repositories share a name).
 *
 * Since every binding of a target routes the GraphQL endpoint, a profile can bind one GitHub
 * connection per target; a second binding to the same target is a route conflict.
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
        // Read-only: the push's ref discovery (`info/refs?service=git-receive-pack`) shares its
        // path with a fetch's, so it is refused by query — before any credential is attached.
        ...(push ? {} : { excludeQuery: [{ name: "service", values: ["git-receive-pack"] }] }),
      },
      upstream: { baseUrl: web.origin },
      auth: { type: "basic", name: "authorization", username: GIT_TOKEN_USERNAME },
      credential,
    },
  ];

  const apiPrefixesByOrigin = new Map<string, { host: string; prefixes: Set<string> }>();
  for (const [field, url] of apiEndpointEntries(config)) {
    const parts = splitBaseUrl(url);
    const entry = apiPrefixesByOrigin.get(parts.origin) ?? {
      host: parts.host,
      prefixes: new Set(),
    };
    for (const prefix of apiPathPrefixes(field, parts.pathPrefix, repositories)) {
      entry.prefixes.add(prefix);
    }
    apiPrefixesByOrigin.set(parts.origin, entry);
  }
  for (const [origin, { host, prefixes }] of apiPrefixesByOrigin) {
    routes.push({
      match: { hosts: [host], pathPrefixes: [...prefixes] },
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

/**
 * The API paths one binding routes on an endpoint (`apiEndpointEntries` field): REST and uploads
 * under each bound repository (`/repos/{owner}/{repo}` covers issues, pulls, contents, releases
 * and the rest of a repository's API), GraphQL as its one endpoint path.
 */
function apiPathPrefixes(
  field: string,
  endpointPath: string,
  repositories: readonly RepositoryRef[],
): string[] {
  if (field === "graphqlUrl") return [endpointPath];
  const base = endpointPath === "/" ? "" : endpointPath;
  return repositories.map((r) => `${base}/repos/${r.owner}/${r.name}`);
}
