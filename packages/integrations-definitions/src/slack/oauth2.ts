import {
  type Clock,
  isJsonObject,
  type OAuth2Behaviour,
  OAuth2Error,
  type OAuth2TargetContext,
  type OAuth2TokenSet,
} from "@keyway/integrations-core";
import {
  buildAuthorizationUrl,
  type OAuth2ClientAuth,
  readStandardTokenSet,
  requestToken,
  type TokenRequest,
} from "../shared/oauth2-client";
import type { SlackTargetConfig } from "./target-config-schema";
import type { SlackTargetSecrets } from "./target-secret-schema";

type SlackOAuth2Context = OAuth2TargetContext<SlackTargetConfig, SlackTargetSecrets>;

/**
 * Slack's OAuth v2 (docs.slack.dev/authentication/installing-with-oauth): bot scopes in `scope`
 * and user scopes in `user_scope`, both comma-separated; the code is exchanged at
 * `oauth.v2.access`, which Slack asks to be called with the client id and secret as HTTP Basic
 * credentials. With token rotation enabled the bot token expires after 12 hours and is refreshed
 * at the same method with `grant_type=refresh_token`, each answer carrying a new refresh token
 * (docs.slack.dev/authentication/using-token-rotation). Failures come as HTTP 200 `ok: false`.
 */
export const slackOAuth2: OAuth2Behaviour<SlackTargetConfig, SlackTargetSecrets, unknown> = {
  authorizationUrl(ctx) {
    const { config } = ctx.target;
    const userScopes = config.userScopes.join(",");
    return buildAuthorizationUrl(config.authorizationUrl, {
      client_id: requireClientId(ctx),
      redirect_uri: ctx.redirectUri,
      response_type: "code",
      scope: (ctx.scopes ?? config.scopes).join(","),
      user_scope: userScopes === "" ? undefined : userScopes,
      state: ctx.state,
      ...(config.pkce ? { code_challenge: ctx.codeChallenge, code_challenge_method: "S256" } : {}),
    });
  },

  async exchangeCode(ctx) {
    return slackTokenRequest(ctx, {
      grant_type: "authorization_code",
      code: ctx.code,
      redirect_uri: ctx.redirectUri,
      ...(ctx.target.config.pkce ? { code_verifier: ctx.codeVerifier } : {}),
    });
  },

  async refresh(ctx) {
    return slackTokenRequest(ctx, { grant_type: "refresh_token", refresh_token: ctx.refreshToken });
  },
};

async function slackTokenRequest(
  ctx: SlackOAuth2Context & Pick<TokenRequest, "fetch" | "clock">,
  params: Record<string, string>,
): Promise<OAuth2TokenSet> {
  // Slack's "try later" errors (internal_error, ratelimited, ...) arrive as HTTP 200
  // `{ ok: false }`; core's classifyOAuth2Failure knows them as temporary.
  return requestToken({
    fetch: ctx.fetch,
    clock: ctx.clock,
    tokenUrl: ctx.target.config.tokenUrl,
    params,
    clientAuth: clientAuth(ctx),
    readTokenSet: readSlackTokenSet,
  });
}

/** The bot token's installation: the workspace, or the organization for an org-wide install. */
export function readSlackTokenSet(body: Record<string, unknown>, clock: Clock): OAuth2TokenSet {
  const tokens = readStandardTokenSet(body, clock);
  const subject = idOf(body.team) ?? idOf(body.enterprise);
  return subject === undefined ? tokens : { ...tokens, externalSubjectId: subject };
}

function idOf(value: unknown): string | undefined {
  return isJsonObject(value) && typeof value.id === "string" && value.id !== ""
    ? value.id
    : undefined;
}

function requireClientId(ctx: SlackOAuth2Context): string {
  const clientId = ctx.target.config.clientId;
  if (clientId === undefined) {
    throw new OAuth2Error(
      "permanent",
      "client_not_configured",
      `target ${ctx.target.targetKey} has no Slack client id configured`,
    );
  }
  return clientId;
}

function clientAuth(ctx: SlackOAuth2Context): OAuth2ClientAuth {
  const clientId = requireClientId(ctx);
  const clientSecret = ctx.target.secrets.clientSecret;
  if (clientSecret !== undefined) return { method: "basic", clientId, clientSecret };
  // A PKCE-enabled app is a public client: the verifier stands in for the secret.
  if (ctx.target.config.pkce) return { method: "body", clientId };
  throw new OAuth2Error(
    "permanent",
    "client_not_configured",
    `target ${ctx.target.targetKey} has no Slack client secret configured`,
  );
}
