import {
  classifyOAuth2Failure,
  type FetchLike,
  OAuth2Error,
  type OAuth2FailureKind,
} from "@keyway/integrations-core";

/** Headers GitHub asks REST clients to send (REST API "Getting started", API versions). */
export const GITHUB_REST_HEADERS: Readonly<Record<string, string>> = {
  accept: "application/vnd.github+json",
  "x-github-api-version": "2022-11-28",
};

export interface GitHubRequest {
  fetch: FetchLike;
  url: string;
  /** Bearer token: an app JWT, an installation token, a user token or a PAT. */
  token: string;
  method?: "GET" | "POST";
  body?: unknown;
  /** What the call does, for error messages ("installation token exchange"). */
  what: string;
}

/**
 * Sends one GitHub REST request and returns the parsed JSON body. Failures throw `OAuth2Error`
 * so callers classify them the same way as token endpoint failures: `temporary` for network
 * errors, 5xx, 429 and rate-limited 403s; `permanent` for other 4xx (401 bad credentials,
 * 403 forbidden, 404 unknown installation, 422 a repository or permission the installation
 * lacks). Messages carry the status and GitHub's own `message`, never the token.
 */
export async function githubRequest(request: GitHubRequest): Promise<unknown> {
  const { status, body } = await githubExchange(request);
  if (body === undefined) {
    throw new OAuth2Error(
      "temporary",
      "invalid_response",
      `GitHub ${request.what} answered without a JSON body`,
      status,
    );
  }
  return body;
}

export interface GitHubResponse {
  status: number;
  /** Response headers, for `Link` pagination. */
  headers: Headers;
  /** The parsed JSON body; undefined when empty or not JSON (some endpoints answer `202` bare). */
  body: unknown;
}

/** `githubRequest` for callers that need the status and headers, or accept an empty body. */
export async function githubExchange(request: GitHubRequest): Promise<GitHubResponse> {
  const headers: Record<string, string> = {
    ...GITHUB_REST_HEADERS,
    authorization: `Bearer ${request.token}`,
  };
  if (request.body !== undefined) headers["content-type"] = "application/json";
  let response: Response;
  try {
    response = await request.fetch(request.url, {
      method: request.method ?? "GET",
      headers,
      ...(request.body !== undefined ? { body: JSON.stringify(request.body) } : {}),
    });
  } catch {
    throw new OAuth2Error(
      "temporary",
      "network_error",
      `GitHub ${request.what}: ${hostOf(request.url)} unreachable`,
    );
  }
  const text = await response.text().catch(() => "");
  const body = parseJson(text);
  if (!response.ok) {
    const detail =
      isRecord(body) && typeof body.message === "string" ? `: ${body.message.slice(0, 200)}` : "";
    throw new OAuth2Error(
      failureKind(response),
      `http_${response.status}`,
      `GitHub ${request.what} failed with HTTP ${response.status}${detail}`,
      response.status,
    );
  }
  return { status: response.status, headers: response.headers, body };
}

/**
 * GitHub signals rate limiting with 403 as well as 429; those retry once the window resets
 * (REST API "Rate limits": `x-ratelimit-remaining: 0` or a `retry-after` header).
 */
function failureKind(response: Response): OAuth2FailureKind {
  if (
    response.status === 403 &&
    (response.headers.get("x-ratelimit-remaining") === "0" || response.headers.has("retry-after"))
  ) {
    return "temporary";
  }
  return classifyOAuth2Failure(response.status, undefined);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseJson(text: string): unknown {
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "(invalid url)";
  }
}

/** Largest page GitHub's list endpoints serve. */
export const GITHUB_MAX_PER_PAGE = 100;

/**
 * Walks a paginated list endpoint with `per_page=100&page=N`, yielding each page's items until a
 * short page or `maxPages`. `read` extracts the items from a page body and throws on a shape it
 * does not recognise.
 */
export async function* githubPages<T>(
  request: Omit<GitHubRequest, "method" | "body">,
  read: (body: unknown) => T[],
  maxPages: number,
): AsyncGenerator<T[]> {
  for (let page = 1; page <= maxPages; page++) {
    const url = new URL(request.url);
    url.searchParams.set("per_page", String(GITHUB_MAX_PER_PAGE));
    url.searchParams.set("page", String(page));
    const items = read(await githubRequest({ ...request, url: url.toString() }));
    yield items;
    if (items.length < GITHUB_MAX_PER_PAGE) return;
  }
}

/** A response that parsed but is not the documented shape: GitHub (or a proxy) misbehaving. */
export function unexpectedShape(what: string): OAuth2Error {
  return new OAuth2Error(
    "temporary",
    "invalid_response",
    `GitHub ${what} answered an unexpected body`,
  );
}

/**
 * The `cursor` of a `Link: <…?cursor=…>; rel="next"` header (cursor-paginated endpoints such as
 * webhook deliveries). Only the cursor is taken: the next request is built on the target's own
 * API URL, so a bearer token never follows a link to another host.
 */
export function nextPageCursor(link: string | null): string | undefined {
  for (const entry of link?.split(",") ?? []) {
    const [target, ...params] = entry.split(";");
    const url = /^\s*<([^>]*)>\s*$/.exec(target ?? "")?.[1];
    const isNext = params.some((param) => {
      const [name, value = ""] = param.split("=", 2).map((part) => part.trim());
      return name?.toLowerCase() === "rel" && value.replace(/"/g, "").split(/\s+/).includes("next");
    });
    if (url === undefined || !isNext) continue;
    try {
      return new URL(url).searchParams.get("cursor") || undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}
