/**
 * How the console reaches the API: a full HTTP request (method, path, `Authorization: Bearer`,
 * JSON body) handed to the API app's own `fetch` handler, so it passes through the same
 * middleware (body limits, media type, authentication, request deadline) and the same route
 * handlers, role checks and tenancy filters as a CLI or curl request. The console holds no
 * database handle and calls no service function: there is no console-only way in.
 */
export type ApiFetch = (request: Request) => Response | Promise<Response>;

export interface ApiResult {
  status: number;
  /** Parsed JSON (undefined for an empty body). */
  body: unknown;
}

/** API calls as one signed-in user. */
export type ApiCaller = (method: string, path: string, body?: unknown) => Promise<ApiResult>;

/** Origin the synthetic requests carry; the API reads only path, headers and body. */
const INTERNAL_ORIGIN = "http://console.internal";

export function apiCallerFor(fetchApi: ApiFetch, token: string, requestId: string): ApiCaller {
  return async (method, path, body) => {
    const headers: Record<string, string> = {
      authorization: `Bearer ${token}`,
      "x-request-id": requestId,
    };
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetchApi(
      new Request(`${INTERNAL_ORIGIN}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      }),
    );
    const text = await response.text();
    return { status: response.status, body: text === "" ? undefined : JSON.parse(text) };
  };
}

/** The API's error envelope, as far as the console shows it. */
export interface ApiErrorView {
  code: string;
  message: string;
  issues: { field: string; code: string; message: string }[];
}

export function apiError(result: ApiResult): ApiErrorView {
  const error =
    typeof result.body === "object" && result.body !== null && "error" in result.body
      ? (result.body.error as Record<string, unknown>)
      : {};
  const details =
    typeof error.details === "object" && error.details !== null
      ? (error.details as Record<string, unknown>)
      : {};
  const issues = Array.isArray(details.issues)
    ? details.issues.flatMap((issue: unknown) =>
        typeof issue === "object" && issue !== null && "field" in issue && "message" in issue
          ? [
              {
                field: String(issue.field),
                code: "code" in issue ? String(issue.code) : "",
                message: String(issue.message),
              },
            ]
          : [],
      )
    : [];
  return {
    code: typeof error.code === "string" ? error.code : `http_${result.status}`,
    message:
      typeof error.message === "string" ? error.message : `the API answered ${result.status}`,
    issues,
  };
}
