import {
  type Clock,
  type ConnectionView,
  type FetchLike,
  type OAuth2Behaviour,
  OAuth2Error,
  type OAuth2TargetContext,
  type OAuth2TokenSet,
} from "@keyway/integrations-core";
import {
  buildAuthorizationUrl,
  type OAuth2ClientAuth,
  requestToken,
} from "../shared/oauth2-client";
import { httpApiClientCredentialsConfigSchema } from "./connection-methods";
import type {
  HttpApiOAuth2Config,
  HttpApiTargetConfig,
  HttpApiTargetSecrets,
} from "./target-config-schema";

type TargetContext = OAuth2TargetContext<HttpApiTargetConfig, HttpApiTargetSecrets>;

/**
 * OAuth2 client credentials grant (RFC 6749 §4.4) against the token URL in target config, with
 * the connection's own client. Failures are `OAuth2Error`s classified by `requestToken`.
 */
export async function requestHttpApiClientCredentialsToken(
  ctx: TargetContext & {
    connection: ConnectionView<unknown>;
    secrets: Readonly<Record<string, string>>;
    fetch: FetchLike;
    clock: Clock;
  },
): Promise<OAuth2TokenSet> {
  const oauth2 = ctx.target.config.oauth2;
  if (oauth2 === undefined) {
    throw new OAuth2Error(
      "permanent",
      "client_not_configured",
      `target ${ctx.target.targetKey} has no OAuth2 token endpoint`,
    );
  }
  const connectionConfig = httpApiClientCredentialsConfigSchema.safeParse(ctx.connection.config);
  if (!connectionConfig.success) {
    throw new OAuth2Error(
      "permanent",
      "invalid_client",
      `connection ${ctx.connection.id} has no client id`,
    );
  }
  const clientSecret = ctx.secrets.clientSecret;
  if (clientSecret === undefined || clientSecret === "") {
    throw new OAuth2Error(
      "permanent",
      "invalid_client",
      `connection ${ctx.connection.id} has no client secret`,
    );
  }

  const params: Record<string, string> = { grant_type: "client_credentials" };
  if (oauth2.scopes !== undefined && oauth2.scopes.length > 0)
    params.scope = oauth2.scopes.join(" ");
  if (oauth2.audience !== undefined) params.audience = oauth2.audience;
  return requestToken({
    fetch: ctx.fetch,
    clock: ctx.clock,
    tokenUrl: oauth2.tokenUrl,
    params,
    clientAuth: {
      method: oauth2.clientAuth,
      clientId: connectionConfig.data.clientId,
      clientSecret,
    },
  });
}

/**
 * The authorization code grant with PKCE S256 (RFC 6749 §4.1, RFC 7636) against the operator's
 * client: `oauth2.authorizationUrl`, `oauth2.tokenUrl` and `oauth2.clientId` in target config,
 * the client secret as the target secret `clientSecret` (absent = a public client). Scopes are
 * space-separated (RFC 6749 §3.3); refresh keeps whatever refresh token the server rotates in.
 */
export const httpApiAuthorizationCode: OAuth2Behaviour<
  HttpApiTargetConfig,
  HttpApiTargetSecrets,
  unknown
> = {
  authorizationUrl(ctx) {
    const { oauth2, client } = authorizationCodeClient(ctx);
    if (oauth2.authorizationUrl === undefined) {
      throw new OAuth2Error(
        "permanent",
        "client_not_configured",
        `target ${ctx.target.targetKey} has no OAuth2 authorization endpoint`,
      );
    }
    const scopes = ctx.scopes ?? oauth2.scopes ?? [];
    return buildAuthorizationUrl(oauth2.authorizationUrl, {
      response_type: "code",
      client_id: client.clientId,
      redirect_uri: ctx.redirectUri,
      scope: scopes.length > 0 ? scopes.join(" ") : undefined,
      state: ctx.state,
      code_challenge: ctx.codeChallenge,
      code_challenge_method: "S256",
      audience: oauth2.audience,
    });
  },

  async exchangeCode(ctx) {
    const { oauth2, client } = authorizationCodeClient(ctx);
    return requestToken({
      fetch: ctx.fetch,
      clock: ctx.clock,
      tokenUrl: oauth2.tokenUrl,
      params: {
        grant_type: "authorization_code",
        code: ctx.code,
        redirect_uri: ctx.redirectUri,
        code_verifier: ctx.codeVerifier,
      },
      clientAuth: client,
    });
  },

  async refresh(ctx) {
    const { oauth2, client } = authorizationCodeClient(ctx);
    return requestToken({
      fetch: ctx.fetch,
      clock: ctx.clock,
      tokenUrl: oauth2.tokenUrl,
      params: { grant_type: "refresh_token", refresh_token: ctx.refreshToken },
      clientAuth: client,
    });
  },

  clientCredentials: requestHttpApiClientCredentialsToken,
};

function authorizationCodeClient(ctx: TargetContext): {
  oauth2: HttpApiOAuth2Config;
  client: OAuth2ClientAuth;
} {
  const oauth2 = ctx.target.config.oauth2;
  const clientId = oauth2?.clientId;
  if (oauth2 === undefined || clientId === undefined) {
    throw new OAuth2Error(
      "permanent",
      "client_not_configured",
      `target ${ctx.target.targetKey} has no OAuth2 client (oauth2.clientId) configured`,
    );
  }
  const clientSecret = ctx.target.secrets.clientSecret;
  // A public client (no secret) identifies itself in the form; PKCE stands in for the secret.
  const client: OAuth2ClientAuth =
    clientSecret === undefined
      ? { method: "body", clientId }
      : { method: oauth2.clientAuth, clientId, clientSecret };
  return { oauth2, client };
}
