import {
  type BindingContext,
  type CompileBindingOutput,
  splitBaseUrl,
} from "@keyway/integrations-core";
import type { SlackBindingConfig } from "./binding-config-schema";
import type { SlackTargetConfig } from "./target-config-schema";

/** One bearer route to the Web API; the bot token comes from OAuth2 or was pasted by hand. */
export function compileSlackBinding(
  input: BindingContext<SlackTargetConfig, unknown, SlackBindingConfig>,
): CompileBindingOutput {
  const api = splitBaseUrl(input.target.config.apiUrl);
  const oauth = input.connection.methodKind === "oauth2-authorization-code";
  return {
    routes: [
      {
        match: { hosts: [api.host], pathPrefixes: [api.pathPrefix] },
        upstream: { baseUrl: api.origin },
        auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
        credential: { secretType: oauth ? "oauth2_access_token" : "api_key" },
      },
    ],
  };
}
