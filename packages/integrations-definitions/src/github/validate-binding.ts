import { type BindingContext, type BindingIssue, splitBaseUrl } from "@keyway/integrations-core";
import type { GitHubBindingConfig } from "./binding-config-schema";
import { gitPathPrefixes, isPathUnder, parseRepository, type RepositoryRef } from "./repository";
import { apiEndpointEntries, type GitHubTargetConfig } from "./target-config";

const PERMISSION_NAME = /^[a-z][a-z0-9_]*$/;

/**
 * Cross-object rules for a GitHub binding (SPEC §4.1). Codes:
 * - `github.invalid_repository` — not `owner/repo` in GitHub's alphabet;
 * - `github.duplicate_repository` — listed twice (GitHub names are case-insensitive);
 * - `github.repository_owner_mismatch` — a GitHub App installation belongs to one account, so
 *   an installation token can only be narrowed to repositories of that one owner;
 * - `github.repository_conflicts_with_api` — the repository's git paths fall under an API path
 *   on the same host (GHES serves both on one host), which would make routes overlap;
 * - `github.invalid_permission` — an empty permission set, a malformed permission name, or
 *   `metadata: "write"` (metadata is read-only on GitHub).
 */
export function validateGitHubBinding(
  ctx: BindingContext<GitHubTargetConfig, unknown, GitHubBindingConfig>,
): BindingIssue[] {
  const issues: BindingIssue[] = [];
  const { repositories, permissions } = ctx.binding.config;

  const parsed: (RepositoryRef | undefined)[] = repositories.map((value, i) => {
    const repository = parseRepository(value);
    if (!repository) {
      issues.push({
        code: "github.invalid_repository",
        field: `repositories.${i}`,
        message: "not a repository of the form owner/repo (letters, digits, '-', '_', '.')",
      });
    }
    return repository;
  });

  const seen = new Map<string, number>();
  parsed.forEach((repository, i) => {
    if (!repository) return;
    const key = `${repository.owner}/${repository.name}`.toLowerCase();
    const first = seen.get(key);
    if (first === undefined) {
      seen.set(key, i);
      return;
    }
    issues.push({
      code: "github.duplicate_repository",
      field: `repositories.${i}`,
      message: `${repositories[i]} repeats repositories.${first}`,
    });
  });

  if (ctx.connection.methodKind === "github-app-installation") {
    const owner = parsed.find((r) => r !== undefined)?.owner;
    parsed.forEach((repository, i) => {
      if (!repository || owner === undefined) return;
      if (repository.owner.toLowerCase() !== owner.toLowerCase()) {
        issues.push({
          code: "github.repository_owner_mismatch",
          field: `repositories.${i}`,
          message: `a GitHub App installation covers one account; ${repository.owner} is not ${owner}`,
        });
      }
    });
  }

  const web = splitBaseUrl(ctx.target.config.webBaseUrl);
  const apiPrefixesOnWebHost = apiEndpointEntries(ctx.target.config)
    .map(([, url]) => splitBaseUrl(url))
    .filter((api) => api.host === web.host)
    .map((api) => api.pathPrefix);
  parsed.forEach((repository, i) => {
    if (!repository) return;
    const gitPaths = gitPathPrefixes(web.pathPrefix, repository, { push: true });
    const clash = apiPrefixesOnWebHost.find((api) =>
      gitPaths.some((git) => isPathUnder(git, api) || isPathUnder(api, git)),
    );
    if (clash !== undefined) {
      issues.push({
        code: "github.repository_conflicts_with_api",
        field: `repositories.${i}`,
        message: `the repository's git paths fall under the API path ${clash} on ${web.host}`,
      });
    }
  });

  const names = Object.keys(permissions).sort();
  if (names.length === 0) {
    issues.push({
      code: "github.invalid_permission",
      field: "permissions",
      message: "name at least one permission (e.g. contents: read)",
    });
  }
  for (const name of names) {
    if (!PERMISSION_NAME.test(name)) {
      issues.push({
        code: "github.invalid_permission",
        field: `permissions.${name}`,
        message: `"${name}" is not a GitHub permission name`,
      });
    } else if (name === "metadata" && permissions[name] === "write") {
      issues.push({
        code: "github.invalid_permission",
        field: "permissions.metadata",
        message: "metadata is read-only",
      });
    }
  }
  return issues;
}
