import {
  type Clock,
  type CredentialResolver,
  type FetchLike,
  type JsonValue,
  joinUrl,
  OAuth2Error,
  type ResolvedCredential,
} from "@keyway/integrations-core";
import { githubRequest, isRecord, unexpectedShape } from "./api-client";
import { signTargetAppJwt } from "./app-jwt";
import type { GitHubBindingConfig } from "./binding-config-schema";
import { parseRepository } from "./repository";
import type { GitHubTargetConfig, GitHubTargetWithSecrets } from "./target-config";
import type { GitHubTargetSecrets } from "./target-secret-schema";

export interface InstallationTokenRequest {
  target: GitHubTargetWithSecrets;
  installationId: string | undefined;
  /** Repository names (without owner) to narrow to; omitted = every repository of the installation. */
  repositories?: readonly string[];
  /** Permissions to narrow to; omitted = everything the installation was granted. */
  permissions?: Readonly<Record<string, "read" | "write">>;
  fetch: FetchLike;
  clock: Clock;
}

/**
 * Mints an installation access token: signs an app JWT, then
 * `POST {api}/app/installations/{installation_id}/access_tokens`, optionally narrowed to
 * repositories (by name, GitHub's `repositories` parameter; `repository_ids` would take numeric
 * ids) and permissions. Returns the token and GitHub's `expires_at` (one hour out).
 *
 * The token is passed on as an opaque string: GitHub changes its length and format (installation
 * tokens are moving to a longer stateless format), so nothing here checks either.
 *
 * Exported for control-plane actions on a connection that have no binding to narrow by (resource
 * listing, credential test); routes go through `githubAppInstallationTokenResolver`.
 */
export async function createInstallationToken(
  request: InstallationTokenRequest,
): Promise<ResolvedCredential> {
  const { target, installationId } = request;
  if (installationId === undefined || !/^[0-9]+$/.test(installationId)) {
    throw new OAuth2Error(
      "permanent",
      "missing_installation_id",
      "the connection has no GitHub App installation id",
    );
  }
  const jwt = await signTargetAppJwt(target, request.clock.now());

  const narrowing = {
    ...(request.repositories !== undefined ? { repositories: request.repositories } : {}),
    ...(request.permissions !== undefined ? { permissions: request.permissions } : {}),
  };
  const body = await githubRequest({
    fetch: request.fetch,
    url: joinUrl(target.config.apiBaseUrl, `app/installations/${installationId}/access_tokens`),
    token: jwt,
    method: "POST",
    ...(Object.keys(narrowing).length > 0 ? { body: narrowing } : {}),
    what: "installation token exchange",
  });

  if (!isRecord(body) || typeof body.token !== "string" || body.token.length === 0) {
    throw unexpectedShape("installation token exchange");
  }
  const expiresAt = typeof body.expires_at === "string" ? new Date(body.expires_at) : undefined;
  if (expiresAt === undefined || Number.isNaN(expiresAt.getTime())) {
    throw unexpectedShape("installation token exchange");
  }
  return { value: body.token, expiresAt };
}

/**
 * The `github_app_installation_token` resolver (SPEC §5): an installation token for the route's
 * connection, narrowed to its binding's repositories and permissions. Its cache scope is the
 * installation and that narrowing, so the control plane mints one token per installation and
 * narrowing and reuses it (every session and gateway) until shortly before `expiresAt`.
 */
export const githubAppInstallationTokenResolver: CredentialResolver<
  GitHubTargetConfig,
  GitHubTargetSecrets,
  unknown,
  GitHubBindingConfig
> = {
  resolve(ctx) {
    return createInstallationToken({
      target: ctx.target,
      installationId: ctx.connection.externalSubjectId,
      ...bindingNarrowing(ctx.binding.config),
      fetch: ctx.fetch,
      clock: ctx.clock,
    });
  },
  cacheScope(ctx) {
    return installationScope(ctx, bindingNarrowing(ctx.binding.config));
  },
};

function bindingNarrowing(config: GitHubBindingConfig) {
  return {
    repositories: config.repositories.flatMap((value) => {
      const repository = parseRepository(value);
      return repository ? [repository.name] : [];
    }),
    permissions: config.permissions,
  };
}

/**
 * What an installation token depends on, as a cache scope: the GitHub server, the installation
 * and the narrowing — repository names as a set, permissions as a map; `null` for "not narrowed"
 * (every repository and permission the installation has).
 */
export function installationScope(
  ctx: {
    target: { config: Pick<GitHubTargetConfig, "apiBaseUrl"> };
    connection: { externalSubjectId?: string };
  },
  narrowing: {
    repositories?: readonly string[];
    permissions?: Readonly<Record<string, string>>;
  } = {},
): JsonValue {
  return {
    apiBaseUrl: ctx.target.config.apiBaseUrl,
    installationId: ctx.connection.externalSubjectId ?? null,
    repositories:
      narrowing.repositories === undefined ? null : [...new Set(narrowing.repositories)].sort(),
    permissions: narrowing.permissions === undefined ? null : { ...narrowing.permissions },
  };
}
