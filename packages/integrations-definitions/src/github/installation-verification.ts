import {
  type Clock,
  type FetchLike,
  joinUrl,
  OAuth2Error,
  type TargetView,
} from "@keyway/integrations-core";
import { buildAuthorizationUrl, requestToken } from "../shared/oauth2-client";
import { githubPages, isRecord, unexpectedShape } from "./api-client";
import type { GitHubTargetConfig, GitHubTargetWithSecrets } from "./target-config";

/**
 * The page where a user installs the target's GitHub App. GitHub returns `state` unchanged to the
 * app's setup URL. The path differs by edition ("Sharing your GitHub App"): `/apps/<slug>` on
 * GitHub.com, `/github-apps/<slug>` on GitHub Enterprise Server.
 */
export function installUrl(target: TargetView<GitHubTargetConfig>, state: string): string {
  const { appSlug, edition, webBaseUrl } = target.config;
  if (appSlug === undefined) {
    throw new OAuth2Error(
      "permanent",
      "missing_app_slug",
      `target ${target.targetKey} has no appSlug; set it to offer GitHub App installation`,
    );
  }
  const section = edition === "cloud" ? "apps" : "github-apps";
  return buildAuthorizationUrl(joinUrl(webBaseUrl, `${section}/${appSlug}/installations/new`), {
    state,
  });
}

export interface VerifyInstallationOwnershipInput {
  target: GitHubTargetWithSecrets;
  /** The `code` GitHub appends to the setup URL when the app requests user authorization. */
  code: string;
  /** The `installation_id` from the same redirect: untrusted until this check passes. */
  installationId: string;
  fetch: FetchLike;
  clock: Clock;
  /** Only when the app registers several callback URLs and the flow used a specific one. */
  redirectUri?: string;
}

/** Upper bound on `/user/installations` pages read (100 each) before giving up. */
const MAX_INSTALLATION_PAGES = 10;

/**
 * Confirms that the installation a setup redirect names is one the redirected user can access.
 * GitHub warns that anyone can call the setup URL with a forged `installation_id` ("About the
 * setup URL"), so the id is only accepted when GitHub lists it for the user: the `code` is
 * exchanged for a user access token at `{web}/login/oauth/access_token`, then
 * `GET {api}/user/installations` is paged looking for the id.
 *
 * Returns false when the installation is not listed (or the id is not numeric). A code GitHub
 * refuses (`bad_verification_code`, wrong client credentials) throws a permanent `OAuth2Error`;
 * GitHub being unavailable throws a temporary one.
 */
export async function verifyInstallationOwnership(
  input: VerifyInstallationOwnershipInput,
): Promise<boolean> {
  const { target } = input;
  const { clientId, clientSecret } = target.secrets;
  if (clientId === undefined || clientSecret === undefined) {
    throw new OAuth2Error(
      "permanent",
      "missing_client_credentials",
      `target ${target.targetKey} needs clientId and clientSecret to verify installations`,
    );
  }
  if (!/^[0-9]+$/.test(input.installationId)) return false;

  const userToken = await requestToken({
    fetch: input.fetch,
    clock: input.clock,
    tokenUrl: joinUrl(target.config.webBaseUrl, "login/oauth/access_token"),
    params: {
      code: input.code,
      ...(input.redirectUri !== undefined ? { redirect_uri: input.redirectUri } : {}),
    },
    clientAuth: { method: "body", clientId, clientSecret },
  });

  const pages = githubPages(
    {
      fetch: input.fetch,
      url: joinUrl(target.config.apiBaseUrl, "user/installations"),
      token: userToken.accessToken,
      what: "installation listing",
    },
    readInstallationIds,
    MAX_INSTALLATION_PAGES,
  );
  for await (const ids of pages) {
    if (ids.includes(input.installationId)) return true;
  }
  return false;
}

function readInstallationIds(body: unknown): string[] {
  if (!isRecord(body) || !Array.isArray(body.installations)) {
    throw unexpectedShape("installation listing");
  }
  return body.installations.flatMap((installation) =>
    isRecord(installation) &&
    (typeof installation.id === "number" || typeof installation.id === "string")
      ? [String(installation.id)]
      : [],
  );
}
