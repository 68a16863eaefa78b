import {
  type Clock,
  classifyOAuth2Failure,
  type FetchLike,
  OAuth2Error,
  type OAuth2TokenSet,
} from "@keyway/integrations-core";

export interface OAuth2ClientAuth {
  /** `basic`: HTTP Basic with client id/secret (RFC 6749 §2.3.1); `body`: both in the form. */
  method: "basic" | "body";
  clientId: string;
  clientSecret?: string;
}

export interface TokenRequest {
  fetch: FetchLike;
  clock: Clock;
  tokenUrl: string;
  params: Record<string, string>;
  clientAuth: OAuth2ClientAuth;
  /** How the request body is encoded: RFC 6749's form (default), or JSON where a provider documents it. */
  encoding?: "form" | "json";
  /** Reads a provider's success body; the default reads RFC 6749 §5.1 fields. */
  readTokenSet?: (body: Record<string, unknown>, clock: Clock) => OAuth2TokenSet;
}

/**
 * POSTs a form to a token endpoint and returns the token set. Failures become `OAuth2Error`s
 * classified temporary or permanent; messages carry the provider's error code and HTTP status,
 * never a token or secret.
 */
export async function requestToken(request: TokenRequest): Promise<OAuth2TokenSet> {
  const form = new URLSearchParams(request.params);
  const headers: Record<string, string> = {
    "content-type": "application/x-www-form-urlencoded",
    accept: "application/json",
  };
  const { clientAuth } = request;
  if (clientAuth.method === "basic") {
    const pair = `${encodeURIComponent(clientAuth.clientId)}:${encodeURIComponent(clientAuth.clientSecret ?? "")}`;
    headers.authorization = `Basic ${Buffer.from(pair).toString("base64")}`;
  } else {
    form.set("client_id", clientAuth.clientId);
    if (clientAuth.clientSecret !== undefined) form.set("client_secret", clientAuth.clientSecret);
  }

  let body: string = form.toString();
  if (request.encoding === "json") {
    headers["content-type"] = "application/json";
    body = JSON.stringify(Object.fromEntries(form));
  }
  let response: Response;
  try {
    response = await request.fetch(request.tokenUrl, { method: "POST", headers, body });
  } catch {
    throw new OAuth2Error(
      "temporary",
      "network_error",
      `token endpoint ${hostOf(request.tokenUrl)} unreachable`,
    );
  }
  const answer = await readJsonObject(response);
  if (response.ok && answer === undefined) {
    throw new OAuth2Error(
      "temporary",
      "invalid_token_response",
      "token endpoint answered without a body",
    );
  }
  const errorCode = typeof answer?.error === "string" ? answer.error : undefined;
  // Some providers (Slack) answer 200 with `{ ok: false, error }`.
  if (!response.ok || answer === undefined || errorCode !== undefined || answer.ok === false) {
    const status = response.ok ? 400 : response.status;
    const code = errorCode ?? `http_${response.status}`;
    throw new OAuth2Error(
      classifyOAuth2Failure(status, errorCode),
      code,
      `token endpoint ${hostOf(request.tokenUrl)} refused the request: ${code} (HTTP ${response.status})`,
      response.status,
    );
  }
  return (request.readTokenSet ?? readStandardTokenSet)(answer, request.clock);
}

/** RFC 6749 §5.1 token response fields. */
export function readStandardTokenSet(body: Record<string, unknown>, clock: Clock): OAuth2TokenSet {
  const accessToken = body.access_token;
  if (typeof accessToken !== "string" || accessToken.length === 0) {
    throw new OAuth2Error(
      "temporary",
      "invalid_token_response",
      "token response has no access_token",
    );
  }
  const set: OAuth2TokenSet = { accessToken };
  if (typeof body.refresh_token === "string") set.refreshToken = body.refresh_token;
  if (typeof body.scope === "string") set.scope = body.scope;
  if (typeof body.token_type === "string") set.tokenType = body.token_type;
  const expiresIn = typeof body.expires_in === "string" ? Number(body.expires_in) : body.expires_in;
  if (typeof expiresIn === "number" && Number.isFinite(expiresIn) && expiresIn > 0) {
    set.expiresAt = new Date(clock.now().getTime() + expiresIn * 1000);
  }
  return set;
}

/** `base?k=v&...` keeping any query the base already has. */
export function buildAuthorizationUrl(
  base: string,
  params: Record<string, string | undefined>,
): string {
  const url = new URL(base);
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined) url.searchParams.set(key, value);
  }
  return url.toString();
}

async function readJsonObject(response: Response): Promise<Record<string, unknown> | undefined> {
  const text = await response.text().catch(() => "");
  if (text === "") return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch {
    // Some token endpoints answer form-encoded bodies.
    const form = new URLSearchParams(text);
    return form.size > 0 ? Object.fromEntries(form) : undefined;
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "(invalid url)";
  }
}
