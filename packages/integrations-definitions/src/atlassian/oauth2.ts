import {
  type FetchLike,
  isJsonObject,
  type OAuth2Behaviour,
  OAuth2Error,
  type OAuth2TargetContext,
} from "@keyway/integrations-core";
import {
  buildAuthorizationUrl,
  type OAuth2ClientAuth,
  requestToken,
} from "../shared/oauth2-client";
import type { AtlassianTargetConfig, AtlassianTargetSecrets } from "./target-config-schema";

type AtlassianOAuth2Context = OAuth2TargetContext<AtlassianTargetConfig, AtlassianTargetSecrets>;

/**
 * Atlassian OAuth 2.0 (3LO) (developer.atlassian.com/cloud/jira/platform/oauth-2-3lo-apps):
 * `audience=api.atlassian.com` and `prompt=consent` on the authorize URL, space-separated scopes,
 * the code and refresh requests as JSON bodies carrying the client id and secret (the documented
 * form). With `offline_access` each refresh returns a new refresh token (rotating refresh
 * tokens). Atlassian documents no PKCE for 3LO apps, so none is sent; the state still binds the
 * callback. The token names no site: the connection's subject is the cloud id of the first site
 * `accessible-resources` lists for the new token.
 */
export const atlassianOAuth2: OAuth2Behaviour<
  AtlassianTargetConfig,
  AtlassianTargetSecrets,
  unknown
> = {
  authorizationUrl(ctx) {
    const { config } = ctx.target;
    return buildAuthorizationUrl(config.authorizationUrl, {
      audience: "api.atlassian.com",
      client_id: requireClientId(ctx),
      scope: (ctx.scopes ?? config.scopes).join(" "),
      redirect_uri: ctx.redirectUri,
      state: ctx.state,
      response_type: "code",
      prompt: "consent",
    });
  },

  async exchangeCode(ctx) {
    const tokens = await requestToken({
      fetch: ctx.fetch,
      clock: ctx.clock,
      tokenUrl: ctx.target.config.tokenUrl,
      encoding: "json",
      params: { grant_type: "authorization_code", code: ctx.code, redirect_uri: ctx.redirectUri },
      clientAuth: clientAuth(ctx),
    });
    const cloudId = await firstCloudId(ctx.target.config.apiUrl, tokens.accessToken, ctx.fetch);
    return { ...tokens, externalSubjectId: cloudId };
  },

  async refresh(ctx) {
    return requestToken({
      fetch: ctx.fetch,
      clock: ctx.clock,
      tokenUrl: ctx.target.config.tokenUrl,
      encoding: "json",
      params: { grant_type: "refresh_token", refresh_token: ctx.refreshToken },
      clientAuth: clientAuth(ctx),
    });
  },
};

function requireClientId(ctx: AtlassianOAuth2Context): string {
  const clientId = ctx.target.config.clientId;
  if (clientId === undefined) {
    throw new OAuth2Error(
      "permanent",
      "client_not_configured",
      `target ${ctx.target.targetKey} has no Atlassian OAuth 2.0 app (clientId) configured`,
    );
  }
  return clientId;
}

function clientAuth(ctx: AtlassianOAuth2Context): OAuth2ClientAuth {
  const clientSecret = ctx.target.secrets.clientSecret;
  if (clientSecret === undefined) {
    throw new OAuth2Error(
      "permanent",
      "client_not_configured",
      `target ${ctx.target.targetKey} has no Atlassian OAuth 2.0 app secret configured`,
    );
  }
  return { method: "body", clientId: requireClientId(ctx), clientSecret };
}

/**
 * `GET {apiUrl}/oauth/token/accessible-resources`: the sites the token may call, each `{ id,
 * name, url, scopes }` where `id` is the cloud id. Unlike Linear's organization lookup, a failure
 * here fails the connection: without a cloud id no product API can be addressed.
 */
async function firstCloudId(apiUrl: string, accessToken: string, fetch: FetchLike) {
  const url = `${apiUrl.replace(/\/+$/, "")}/oauth/token/accessible-resources`;
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { authorization: `Bearer ${accessToken}`, accept: "application/json" },
    });
  } catch {
    throw new OAuth2Error("temporary", "network_error", "accessible-resources is unreachable");
  }
  if (!response.ok) {
    throw new OAuth2Error(
      response.status >= 500 || response.status === 429 ? "temporary" : "permanent",
      `http_${response.status}`,
      `accessible-resources answered HTTP ${response.status}`,
      response.status,
    );
  }
  const body: unknown = await response.json().catch(() => undefined);
  const first = Array.isArray(body) ? body.find(isJsonObject) : undefined;
  const id = first?.id;
  if (typeof id !== "string" || id === "") {
    throw new OAuth2Error(
      "permanent",
      "no_accessible_resources",
      "the authorization grants access to no Atlassian site",
    );
  }
  return id;
}
