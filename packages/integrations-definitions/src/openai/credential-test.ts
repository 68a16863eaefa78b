import { type CredentialTest, joinUrl } from "@keyway/integrations-core";
import { probeCredential } from "../shared/probe-credential";
import type { OpenaiTargetConfig } from "./target-config-schema";

/**
 * Checks an API key with `GET {apiBaseUrl}/models` (OpenAI API reference, "List models"), the
 * cheapest authenticated call: it costs no tokens and any valid key may make it. OpenAI's error
 * `message` quotes part of the key, so only its `code` is repeated.
 */
export const openaiCredentialTest: CredentialTest<OpenaiTargetConfig, unknown> = {
  test: ({ target, credential, fetch }) =>
    probeCredential({
      fetch,
      url: joinUrl(target.config.apiBaseUrl, "models"),
      headers: { authorization: `Bearer ${credential}` },
      provider: "OpenAI",
      errorField: "code",
    }),
};
