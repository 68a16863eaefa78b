import type { Context } from "hono";
import type { Child } from "hono/jsx";
import { type ApiCaller, type ApiResult, apiError } from "./api-client";
import { ErrorNotice, Page } from "./layout";
import type { PostedForm } from "./schema-form";
import type { ConsoleSession } from "./session";

/** Context variables of signed-in console pages. */
export interface ConsoleEnv {
  Variables: {
    requestId: string;
    session: ConsoleSession;
    /** The public API, as the signed-in user. */
    api: ApiCaller;
    /** The posted form of a POST (read once by the CSRF check). */
    form: PostedForm;
  };
}

export type ConsoleContext = Context<ConsoleEnv>;

export function renderPage(
  c: ConsoleContext,
  title: string,
  content: Child,
  status: 200 | 400 | 403 | 404 | 409 | 422 | 502 | 503 = 200,
): Response | Promise<Response> {
  c.header("cache-control", "no-store");
  return c.html(
    <Page title={title} path={c.req.path} session={c.get("session")}>
      {content}
    </Page>,
    status,
  );
}

/**
 * A page for an API refusal, with the API's status: 404 stays 404 (another organization's ids
 * look exactly like ids that do not exist), 403 names the role needed, and an API that no longer
 * accepts the session's credential ends the session.
 */
export function apiFailurePage(c: ConsoleContext, result: ApiResult): Response | Promise<Response> {
  if (result.status === 401) return c.redirect("/console/sign-in?expired=1", 303);
  const error = apiError(result);
  const status =
    result.status === 404 || result.status === 403 || result.status === 409 || result.status === 422
      ? result.status
      : result.status === 400
        ? 400
        : result.status === 503
          ? 503
          : 502;
  const title = status === 404 ? "Not found" : status === 403 ? "Not allowed" : "Request refused";
  return renderPage(
    c,
    title,
    <>
      <ErrorNotice error={error} />
      <p>
        <a href="/console">Back to the console</a>
      </p>
    </>,
    status,
  );
}

/** `GET` through the API; returns the body or the failure page to send. */
export async function load(
  c: ConsoleContext,
  path: string,
): Promise<
  | { ok: true; body: Record<string, unknown> }
  | { ok: false; response: Response | Promise<Response> }
> {
  const result = await c.get("api")("GET", path);
  if (result.status !== 200) return { ok: false, response: apiFailurePage(c, result) };
  const body = result.body;
  return {
    ok: true,
    body: typeof body === "object" && body !== null ? (body as Record<string, unknown>) : {},
  };
}

/** `items` of a list response, as objects. */
/** An API answer's JSON object (anything else reads as empty). */
export type Json = Record<string, unknown>;
export const asJson = (value: unknown): Json =>
  typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Json) : {};
export const asList = (value: unknown): Json[] => (Array.isArray(value) ? value.map(asJson) : []);

export function itemsOf(body: Record<string, unknown>): Record<string, unknown>[] {
  return Array.isArray(body.items)
    ? body.items.filter(
        (item): item is Record<string, unknown> => typeof item === "object" && item !== null,
      )
    : [];
}

export function str(value: unknown): string {
  return typeof value === "string"
    ? value
    : value === null || value === undefined
      ? ""
      : String(value);
}

/** Path segments typed into the URL go to the API encoded, never as extra path. */
export const seg = encodeURIComponent;
