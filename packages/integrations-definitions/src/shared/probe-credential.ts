import type { FetchLike } from "@keyway/integrations-core";

/**
 * A credential test that makes one cheap authenticated GET and reports the outcome. Only a
 * machine-readable error field (`error.<errorField>`, a short snake_case word) is repeated from
 * the provider's answer: free-text messages may quote part of the key.
 */
export async function probeCredential(options: {
  fetch: FetchLike;
  url: string;
  headers: Record<string, string>;
  provider: string;
  /** Which member of the provider's `{ error: {...} }` body names the failure. */
  errorField: string;
}): Promise<{ ok: boolean; message: string }> {
  const { provider } = options;
  let response: Response;
  try {
    response = await options.fetch(options.url, {
      method: "GET",
      headers: { ...options.headers, accept: "application/json" },
      redirect: "manual",
    });
  } catch {
    return { ok: false, message: `could not reach the ${provider} API` };
  }
  if (response.ok) {
    // Drain the small body so the connection can be reused; a broken body changes nothing.
    await response.arrayBuffer().catch(() => undefined);
    return { ok: true, message: `${provider} accepted the API key` };
  }
  const code = await readErrorField(response, options.errorField);
  const detail = code ? `, ${code}` : "";
  if (response.status === 401) {
    return { ok: false, message: `${provider} rejected the API key (HTTP 401${detail})` };
  }
  return { ok: false, message: `${provider} answered HTTP ${response.status}${detail}` };
}

async function readErrorField(response: Response, field: string): Promise<string | undefined> {
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    return undefined;
  }
  if (typeof body !== "object" || body === null || !("error" in body)) return undefined;
  const error: unknown = body.error;
  if (typeof error !== "object" || error === null || !(field in error)) return undefined;
  const value: unknown = (error as Record<string, unknown>)[field];
  return typeof value === "string" && /^[a-z0-9_]{1,64}$/.test(value) ? value : undefined;
}
