import { createRoute, type z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { requireRole } from "../auth/principal";
import type { AppDeps } from "../deps";
import type { AppEnv } from "../env";
import { DomainError } from "../errors";
import { requestDeps } from "../request-deadline";
import { createRouter, errorResponses } from "../router";
import {
  type CompletedOAuth2Flow,
  completeOAuth2Flow,
  OAUTH2_CALLBACK_PATH,
  OAuth2CallbackRefusal,
  startOAuth2Flow,
} from "./oauth2-flow";
import {
  oauth2CallbackQuery,
  oauth2CompletedSchema,
  oauth2StartedSchema,
  startOAuth2Body,
} from "./schemas";

const json = <T extends z.ZodType>(schema: T) => ({ content: { "application/json": { schema } } });

/** `POST /v1/integration/connections/oauth2/start` (members; bearer-authenticated like `/v1`). */
export function oauth2StartRoutes(deps: AppDeps) {
  const router = createRouter();
  router.openapi(
    createRoute({
      method: "post",
      path: "/v1/integration/connections/oauth2/start",
      tags: ["connections"],
      security: [{ bearer: [] }],
      summary: "Start an OAuth2 authorization code flow (PKCE S256); send the browser to the URL",
      request: { body: { ...json(startOAuth2Body), required: true } },
      responses: {
        201: {
          description: "The flow (valid 10 minutes, single use)",
          ...json(oauth2StartedSchema),
        },
        ...errorResponses,
        409: { description: "The connection to reconnect is revoked (`connection_revoked`)" },
        422: {
          description:
            "`target_not_found`, `target_disabled`, `method_not_found`, `method_not_supported_here`, " +
            "`oauth2_client_not_configured`, `redirect_not_allowed` (audited)",
        },
      },
    }),
    async (c) => {
      const principal = requireRole(c.get("principal"), "member");
      return c.json(
        await startOAuth2Flow(requestDeps(deps, c), principal, c.req.valid("json")),
        201,
      );
    },
  );
  return router;
}

/**
 * `GET /v1/integration/connections/oauth2/callback`: public (the provider redirects the user's
 * browser here, with no Keyway credential); the flow's `state` is what authenticates it. The
 * answer is a redirect to the flow's `redirectAfter` when it has one, else a small page for
 * browsers (`Accept: text/html`) or JSON for API clients. Nothing here may be cached or leak the
 * code onwards in a Referer.
 */
export function oauth2CallbackRoutes(deps: AppDeps) {
  const router = createRouter();
  router.use(OAUTH2_CALLBACK_PATH, async (c, next) => {
    await next();
    c.header("cache-control", "no-store");
    c.header("referrer-policy", "no-referrer");
  });
  router.openapi(
    createRoute({
      method: "get",
      path: OAUTH2_CALLBACK_PATH,
      tags: ["connections"],
      summary: "Where the provider sends the browser back (public; the state authenticates it)",
      request: { query: oauth2CallbackQuery },
      responses: {
        200: {
          description: "Connected (a page for browsers, JSON otherwise)",
          ...json(oauth2CompletedSchema),
        },
        302: { description: "Back to the flow's redirectAfter, with `connectionId` or `error`" },
        400: { description: "No state in the query" },
        409: { description: "`connection_revoked`, `oauth2_subject_mismatch` (reconnect)" },
        422: {
          description:
            "`oauth2_state_invalid` (unknown, expired, used), `oauth2_authorization_denied`, " +
            "`oauth2_code_rejected`, `target_disabled` — each audited, nothing else written",
        },
        502: { description: "The token endpoint failed (`provider_request_failed`)" },
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      let completed: CompletedOAuth2Flow;
      try {
        completed = await completeOAuth2Flow(requestDeps(deps, c), query, c.get("requestId"));
      } catch (error) {
        if (error instanceof OAuth2CallbackRefusal && error.redirectAfter !== null) {
          return c.redirect(withParams(error.redirectAfter, { error: error.code }), 302);
        }
        if (error instanceof DomainError && wantsHtml(c)) return errorPage(c, error);
        throw error;
      }
      const { connection, reconnected, redirectAfter } = completed;
      if (redirectAfter !== null) {
        return c.redirect(
          withParams(redirectAfter, { connectionId: connection.id, status: connection.status }),
          302,
        );
      }
      if (wantsHtml(c)) {
        return page(
          c,
          200,
          reconnected ? "Connection re-authorised" : "Connected",
          `${connection.displayName} (${connection.targetKey}) is ${connection.status}: connection ${connection.id}. You can close this window.`,
        );
      }
      return c.json({ connection, reconnected }, 200);
    },
  );
  return router;
}

function wantsHtml(c: Context<AppEnv>): boolean {
  return (c.req.header("accept") ?? "").toLowerCase().includes("text/html");
}

function withParams(target: string, params: Record<string, string>): string {
  const url = new URL(target);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  return url.toString();
}

function errorPage(c: Context<AppEnv>, error: DomainError): Response {
  // The JSON answer's status and code, for a person; the request id ties it to the logs.
  return page(
    c,
    error.status,
    "The connection was not made",
    `${error.message} (${error.code}, request ${c.get("requestId") ?? ""})`,
  );
}

function page(c: Context<AppEnv>, status: number, title: string, text: string): Response {
  c.header("content-security-policy", "default-src 'none'");
  const body =
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>` +
    `<body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p></body></html>\n`;
  return c.html(body, status as 200);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}
