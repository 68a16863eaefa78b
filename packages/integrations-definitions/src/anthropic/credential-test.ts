import { type CredentialTest, joinUrl } from "@keyway/integrations-core";
import { probeCredential } from "../shared/probe-credential";
import type { AnthropicTargetConfig } from "./target-config-schema";

/** The API version header every Anthropic API request must carry (Anthropic API "Versions"). */
export const ANTHROPIC_API_VERSION = "2023-06-01";

/**
 * Checks an API key with `GET {apiBaseUrl}/v1/models` (Anthropic API reference, "List Models"):
 * authenticated, free, and open to any valid key. Errors look like
 * `{"type":"error","error":{"type":"authentication_error",...}}`; only that type is repeated.
 */
export const anthropicCredentialTest: CredentialTest<AnthropicTargetConfig, unknown> = {
  test: ({ target, credential, fetch }) =>
    probeCredential({
      fetch,
      url: joinUrl(target.config.apiBaseUrl, "v1/models"),
      headers: { "x-api-key": credential, "anthropic-version": ANTHROPIC_API_VERSION },
      provider: "Anthropic",
      errorField: "type",
    }),
};
