import { type CredentialTest, joinUrl } from "@keyway/integrations-core";
import type { AnthropicTargetConfig } from "./target-config-schema";

/** The API version header every Anthropic API request must carry (Anthropic API "Versions"). */
export const ANTHROPIC_API_VERSION = "2023-06-01";

/**
 * Checks an API key with `GET {apiBaseUrl}/v1/models` (Anthropic API reference, "List Models"):
 * authenticated, free, and open to any valid key.
 */
export const anthropicCredentialTest: CredentialTest<AnthropicTargetConfig, unknown> = {
  async test({ target, credential, fetch }) {
    let response: Response;
    try {
      response = await fetch(joinUrl(target.config.apiBaseUrl, "v1/models"), {
        method: "GET",
        headers: {
          "x-api-key": credential,
          "anthropic-version": ANTHROPIC_API_VERSION,
          accept: "application/json",
        },
        redirect: "manual",
      });
    } catch {
      return { ok: false, message: "could not reach the Anthropic API" };
    }
    if (response.ok) {
      // Drain the small list so the connection can be reused; a broken body changes nothing.
      await response.arrayBuffer().catch(() => undefined);
      return { ok: true, message: "Anthropic accepted the API key" };
    }
    // Only the machine-readable error type is repeated, never the provider's free-text message.
    const type = await readErrorType(response);
    const detail = type ? `, ${type}` : "";
    if (response.status === 401) {
      return { ok: false, message: `Anthropic rejected the API key (HTTP 401${detail})` };
    }
    return { ok: false, message: `Anthropic answered HTTP ${response.status}${detail}` };
  },
};

/** Anthropic errors look like `{"type":"error","error":{"type":"authentication_error",...}}`. */
async function readErrorType(response: Response): Promise<string | undefined> {
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    return undefined;
  }
  if (typeof body !== "object" || body === null || !("error" in body)) return undefined;
  const error: unknown = body.error;
  if (typeof error !== "object" || error === null || !("type" in error)) return undefined;
  const type: unknown = error.type;
  return typeof type === "string" && /^[a-z0-9_]{1,64}$/.test(type) ? type : undefined;
}
