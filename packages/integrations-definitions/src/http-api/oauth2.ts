import {
  type Clock,
  type ConnectionView,
  type FetchLike,
  OAuth2Error,
  type OAuth2TargetContext,
  type OAuth2TokenSet,
} from "@keyway/integrations-core";
import { requestToken } from "../shared/oauth2-client";
import { httpApiClientCredentialsConfigSchema } from "./connection-methods";
import type { HttpApiTargetConfig, HttpApiTargetSecrets } from "./target-config-schema";

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
      "oauth2_not_configured",
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
 * This definition has no authorization-code method; the interactive flows exist on the contract
 * only, and reaching them is a control-plane bug reported as a permanent failure.
 */
export function unsupportedGrant(flow: string): never {
  throw new OAuth2Error(
    "permanent",
    "unsupported_grant_type",
    `http-api connections use the client credentials grant only; ${flow} is not supported`,
  );
}
