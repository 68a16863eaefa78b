import {
  type ConnectionView,
  type CredentialTest,
  joinUrl,
  OAuth2Error,
  type ResourceItem,
  type ResourceLister,
} from "@keyway/integrations-core";
import { githubPages, githubRequest, isRecord, unexpectedShape } from "./api-client";
import type { GitHubTargetConfig } from "./target-config";

/** Upper bound on repository pages (100 each) listed for a picker. */
const MAX_REPOSITORY_PAGES = 10;

const isInstallation = (connection: ConnectionView<unknown>) =>
  connection.methodKind === "github-app-installation";

/**
 * Repositories a connection can reach, for the binding picker: an installation token lists
 * `GET {api}/installation/repositories` (what the installation was granted), a personal access
 * token `GET {api}/user/repos` (what the user owns, collaborates on or reaches through an
 * organization). Items are `owner/repo`, the binding's own format.
 */
export const githubResourceLister: ResourceLister<GitHubTargetConfig, unknown> = {
  kinds: ["repositories"],
  async list(ctx) {
    if (ctx.kind !== "repositories") {
      throw new TypeError(`GitHub lists repositories, not ${ctx.kind}`);
    }
    const installation = isInstallation(ctx.connection);
    const pages = githubPages(
      {
        fetch: ctx.fetch,
        url: joinUrl(
          ctx.target.config.apiBaseUrl,
          installation ? "installation/repositories" : "user/repos",
        ),
        token: ctx.credential,
        what: "repository listing",
      },
      installation ? readInstallationRepositories : readRepositoryArray,
      MAX_REPOSITORY_PAGES,
    );
    const items: ResourceItem[] = [];
    for await (const names of pages) {
      for (const name of names) items.push({ id: name, label: name });
    }
    return items;
  },
};

/**
 * Checks a credential with a cheap authenticated call: `GET {api}/user` for a personal access
 * token, `GET {api}/installation/repositories?per_page=1` for an installation token (which has no
 * user behind it, so `/user` would refuse it).
 */
export const githubCredentialTest: CredentialTest<GitHubTargetConfig, unknown> = {
  async test(ctx) {
    const installation = isInstallation(ctx.connection);
    const url = installation
      ? `${joinUrl(ctx.target.config.apiBaseUrl, "installation/repositories")}?per_page=1`
      : joinUrl(ctx.target.config.apiBaseUrl, "user");
    try {
      const body = await githubRequest({
        fetch: ctx.fetch,
        url,
        token: ctx.credential,
        what: "credential test",
      });
      if (installation) {
        const count =
          isRecord(body) && typeof body.total_count === "number" ? body.total_count : undefined;
        return {
          ok: true,
          message:
            count === undefined
              ? "the installation token is valid"
              : `the installation can access ${count} ${count === 1 ? "repository" : "repositories"}`,
        };
      }
      const login = isRecord(body) && typeof body.login === "string" ? body.login : undefined;
      return { ok: true, message: login ? `authenticated as ${login}` : "the token is valid" };
    } catch (error) {
      if (error instanceof OAuth2Error) return { ok: false, message: error.message };
      throw error;
    }
  },
};

function readInstallationRepositories(body: unknown): string[] {
  if (!isRecord(body) || !Array.isArray(body.repositories)) {
    throw unexpectedShape("repository listing");
  }
  return fullNames(body.repositories);
}

function readRepositoryArray(body: unknown): string[] {
  if (!Array.isArray(body)) throw unexpectedShape("repository listing");
  return fullNames(body);
}

function fullNames(repositories: readonly unknown[]): string[] {
  return repositories.flatMap((r) =>
    isRecord(r) && typeof r.full_name === "string" ? [r.full_name] : [],
  );
}
