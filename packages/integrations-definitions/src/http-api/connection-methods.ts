import { type ConnectionMethod, singleLineTextSchema } from "@keyway/integrations-core";
import { z } from "zod";

/**
 * Connection config of the client-credentials method. The client id is config, not a secret
 * (RFC 6749 §2.2: "The client identifier is not a secret"), so users can see which client a
 * connection uses; only the client secret is stored encrypted. Each organization registers its
 * own client, which is why both live on the connection and not on the target.
 */
export const httpApiClientCredentialsConfigSchema = z.strictObject({
  clientId: singleLineTextSchema.min(1).max(512),
});

export type HttpApiClientCredentialsConfig = z.infer<typeof httpApiClientCredentialsConfigSchema>;

export const httpApiConnectionMethods = [
  {
    id: "api-key",
    label: "API key",
    kind: "api-key",
    secretFields: ["apiKey"],
  },
  {
    id: "client-credentials",
    label: "OAuth2 client credentials",
    kind: "oauth2-client-credentials",
    configSchema: httpApiClientCredentialsConfigSchema,
    configForm: {
      clientId: {
        label: "Client ID",
        help: "The OAuth2 client registered with the API's authorization server",
      },
    },
    secretFields: ["clientSecret"],
  },
  {
    // The operator's client (`oauth2.clientId` in target config, `clientSecret` in target
    // secrets); each user authorises it at the API's authorization server.
    id: "oauth2",
    label: "OAuth2 (authorization code)",
    kind: "oauth2-authorization-code",
  },
] as const satisfies readonly ConnectionMethod[];
