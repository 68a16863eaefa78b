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
import type { LinearTargetConfig } from "./target-config-schema";
import type { LinearTargetSecrets } from "./target-secret-schema";

type LinearOAuth2Context = OAuth2TargetContext<LinearTargetConfig, LinearTargetSecrets>;

/**
 * Linear's OAuth2 authorization code flow (linear.app/developers/oauth-2-0-authentication):
 * comma-separated scopes, PKCE S256, client id and secret as form fields of the token request
 * (the documented form), and refresh tokens — access tokens expire and each refresh returns a
 * new refresh token.
 */
export const linearOAuth2: OAuth2Behaviour<LinearTargetConfig, LinearTargetSecrets, unknown> = {
  authorizationUrl(ctx) {
    const { config } = ctx.target;
    return buildAuthorizationUrl(config.authorizationUrl, {
      client_id: requireClientId(ctx),
      redirect_uri: ctx.redirectUri,
      response_type: "code",
      scope: (ctx.scopes ?? config.scopes).join(","),
      state: ctx.state,
      code_challenge: ctx.codeChallenge,
      code_challenge_method: "S256",
      actor: config.actor,
    });
  },

  async exchangeCode(ctx) {
    const tokens = await requestToken({
      fetch: ctx.fetch,
      clock: ctx.clock,
      tokenUrl: ctx.target.config.tokenUrl,
      params: {
        grant_type: "authorization_code",
        code: ctx.code,
        redirect_uri: ctx.redirectUri,
        code_verifier: ctx.codeVerifier,
      },
      clientAuth: clientAuth(ctx),
    });
    const organizationId = await lookupOrganizationId(
      ctx.target.config.apiUrl,
      tokens.accessToken,
      ctx.fetch,
    );
    return organizationId === undefined ? tokens : { ...tokens, externalSubjectId: organizationId };
  },

  async refresh(ctx) {
    return requestToken({
      fetch: ctx.fetch,
      clock: ctx.clock,
      tokenUrl: ctx.target.config.tokenUrl,
      params: { grant_type: "refresh_token", refresh_token: ctx.refreshToken },
      clientAuth: clientAuth(ctx),
    });
  },
};

function requireClientId(ctx: LinearOAuth2Context): string {
  const clientId = ctx.target.config.clientId;
  if (clientId === undefined) {
    throw new OAuth2Error(
      "permanent",
      "client_not_configured",
      `target ${ctx.target.targetKey} has no OAuth2 client id configured`,
    );
  }
  return clientId;
}

function clientAuth(ctx: LinearOAuth2Context): OAuth2ClientAuth {
  const clientSecret = ctx.target.secrets.clientSecret;
  if (clientSecret === undefined) {
    throw new OAuth2Error(
      "permanent",
      "client_not_configured",
      `target ${ctx.target.targetKey} has no OAuth2 client secret configured`,
    );
  }
  return { method: "body", clientId: requireClientId(ctx), clientSecret };
}

/**
 * Linear's token response names no workspace, yet webhooks are routed by `organizationId`, so the
 * organization is read once with the new token. A failure here does not undo the connection
 * (the single-use code is already spent); the connection then simply receives no webhooks until
 * it is re-authorised.
 */
async function lookupOrganizationId(
  apiUrl: string,
  accessToken: string,
  fetch: FetchLike,
): Promise<string | undefined> {
  try {
    const response = await fetch(apiUrl, {
      method: "POST",
      headers: {
        authorization: `Bearer ${accessToken}`,
        "content-type": "application/json",
        accept: "application/json",
      },
      body: JSON.stringify({ query: "query KeywayOrganization { organization { id } }" }),
    });
    if (!response.ok) return undefined;
    const body: unknown = await response.json();
    const id = readPath(body, ["data", "organization", "id"]);
    return typeof id === "string" && id.length > 0 ? id : undefined;
  } catch {
    return undefined;
  }
}

function readPath(value: unknown, path: readonly string[]): unknown {
  let node = value;
  for (const key of path) {
    if (!isJsonObject(node) || !Object.hasOwn(node, key)) return undefined;
    node = node[key];
  }
  return node;
}
