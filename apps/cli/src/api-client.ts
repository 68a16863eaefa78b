/**
 * The HTTP client every API command uses: base URL and bearer token from `KEYWAY_URL` /
 * `KEYWAY_TOKEN`, else from the file `keyway login` wrote. Errors come back as `CliError`s
 * carrying the API's stable error code, so `runCli` prints them as one line and maps them to an
 * exit code in one place.
 */

import { EXIT, type ExitCode } from "./exit-codes";

export class CliError extends Error {
  constructor(
    /** The API's error code (`not_found`, `forbidden`, …) or the CLI's own (`usage`, `unreachable`). */
    readonly code: string,
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
  }
}

export function usageError(message: string): CliError {
  return new CliError("usage", message, EXIT.usage);
}

/** A missing or broken setting (no URL or token, an unreadable login file): exit 2, no usage line. */
export function configError(message: string): CliError {
  return new CliError("config", message, EXIT.usage);
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface ApiClient {
  readonly url: string;
  /**
   * Sends one request; resolves with the parsed JSON body (undefined for 204), throws a `CliError`
   * for an error response or an unreachable API.
   */
  request<T = unknown>(
    method: string,
    path: string,
    options?: { body?: unknown; query?: Query },
  ): Promise<T>;
}

export function createApiClient(options: {
  url: string;
  token: string;
  fetch?: typeof globalThis.fetch;
}): ApiClient {
  const base = options.url.replace(/\/+$/, "");
  const send = options.fetch ?? globalThis.fetch;
  return {
    url: base,
    async request<T>(method: string, path: string, init: { body?: unknown; query?: Query } = {}) {
      const url = new URL(base + path);
      for (const [name, value] of Object.entries(init.query ?? {}))
        if (value !== undefined) url.searchParams.set(name, String(value));
      let response: Response;
      try {
        response = await send(url, {
          method,
          headers: {
            authorization: `Bearer ${options.token}`,
            accept: "application/json",
            ...(init.body !== undefined ? { "content-type": "application/json" } : {}),
          },
          ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
        });
      } catch (error) {
        const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
        const reason = cause instanceof Error ? cause.message : String(cause);
        throw new CliError("unreachable", `cannot reach ${base} (${reason})`, EXIT.unreachable);
      }
      const text = await response.text();
      let body: unknown;
      try {
        body = text === "" ? undefined : JSON.parse(text);
      } catch {
        body = undefined;
      }
      if (!response.ok) throw apiError(response.status, body, text);
      if (text !== "" && body === undefined)
        throw new CliError("bad_response", `${method} ${path} answered with non-JSON`, EXIT.api);
      return body as T;
    },
  };
}

/** The API's error body is `{ error: { code, message, requestId, details? } }` (errors.ts). */
function apiError(status: number, body: unknown, text: string): CliError {
  const error =
    typeof body === "object" && body !== null && "error" in body
      ? (body as { error: unknown }).error
      : undefined;
  if (typeof error === "object" && error !== null) {
    const { code, message, details } = error as {
      code?: unknown;
      message?: unknown;
      details?: unknown;
    };
    const detail = describeDetails(details);
    return new CliError(
      typeof code === "string" ? code : `http_${status}`,
      `${typeof message === "string" ? message : `HTTP ${status}`}${detail}`,
      EXIT.api,
    );
  }
  return new CliError(`http_${status}`, `HTTP ${status} ${oneLine(text).slice(0, 200)}`, EXIT.api);
}

/** Validation details (zod issues, config issues) folded into the single error line. */
function describeDetails(details: unknown): string {
  const issues =
    typeof details === "object" && details !== null && "issues" in details
      ? (details as { issues: unknown }).issues
      : details;
  if (!Array.isArray(issues) || issues.length === 0) return "";
  return describeIssues(issues);
}

function describeIssues(details: unknown[]): string {
  const parts = details.slice(0, 5).map((item) => {
    if (typeof item !== "object" || item === null) return String(item);
    const { path, field, message } = item as { path?: unknown; field?: unknown; message?: unknown };
    const where = Array.isArray(path) ? path.join(".") : typeof field === "string" ? field : "";
    return where ? `${where}: ${String(message ?? "")}` : String(message ?? "");
  });
  return ` (${parts.join("; ")}${details.length > 5 ? "; …" : ""})`;
}

export function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}
