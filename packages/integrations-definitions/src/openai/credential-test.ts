import { type CredentialTest, joinUrl } from "@keyway/integrations-core";
import type { OpenaiTargetConfig } from "./target-config-schema";

/**
 * Checks an API key with `GET {apiBaseUrl}/models` (OpenAI API reference, "List models"), the
 * cheapest authenticated call: it costs no tokens and any valid key may make it.
 */
export const openaiCredentialTest: CredentialTest<OpenaiTargetConfig, unknown> = {
  async test({ target, credential, fetch }) {
    let response: Response;
    try {
      response = await fetch(joinUrl(target.config.apiBaseUrl, "models"), {
        method: "GET",
        headers: { authorization: `Bearer ${credential}`, accept: "application/json" },
        redirect: "manual",
      });
    } catch {
      return { ok: false, message: "could not reach the OpenAI API" };
    }
    if (response.ok) {
      // Drain the small list so the connection can be reused; a broken body changes nothing.
      await response.arrayBuffer().catch(() => undefined);
      return { ok: true, message: "OpenAI accepted the API key" };
    }
    // Only OpenAI's machine-readable error code is repeated: its `message` quotes part of the key.
    const code = await readErrorCode(response);
    const detail = code ? `, ${code}` : "";
    if (response.status === 401) {
      return { ok: false, message: `OpenAI rejected the API key (HTTP 401${detail})` };
    }
    return { ok: false, message: `OpenAI answered HTTP ${response.status}${detail}` };
  },
};

async function readErrorCode(response: Response): Promise<string | undefined> {
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    return undefined;
  }
  if (typeof body !== "object" || body === null || !("error" in body)) return undefined;
  const error: unknown = body.error;
  if (typeof error !== "object" || error === null || !("code" in error)) return undefined;
  const code: unknown = error.code;
  return typeof code === "string" && /^[a-z0-9_]{1,64}$/.test(code) ? code : undefined;
}
