import { createRoute, type z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { requireRole } from "../auth/principal";
import type { AppDeps } from "../deps";
import type { AppEnv } from "../env";
import { DomainError } from "../errors";
import { requestDeps } from "../request-deadline";
import { createRouter, errorResponses } from "../router";
import {
  type CompletedInstall,
  completeGitHubAppInstall,
  GITHUB_APP_CALLBACK_PATH,
  startGitHubAppInstall,
} from "./github-app-flow";
import {
  githubAppCallbackParams,
  githubAppCallbackQuery,
  githubAppCompleteBody,
  githubAppCompletedSchema,
  githubAppStartBody,
  githubAppStartedSchema,
} from "./github-app-schemas";

const json = <T extends z.ZodType>(schema: T) => ({ content: { "application/json": { schema } } });
const security = [{ bearer: [] }];
const tags = ["connections"];
const BASE = "/v1/integration/connections/github-app";

const refusals = {
  403: {
    description:
      "`install_state_invalid` (unknown, another organization's or principal's, or another " +
      "target's state), `install_state_used`, `install_state_expired`, " +
      "`installation_not_accessible` (GitHub does not list the installation for the user who " +
      "returned, or refused the code)",
  },
  409: { description: "`installation_pending`: an owner of the account must approve it first" },
  422: {
    description:
      "`installation_authorization_missing`: no `code` (the app must request user " +
      "authorization during installation)",
  },
  502: { description: "`provider_request_failed`: GitHub could not be asked; try again" },
} as const;

/**
 * `POST …/github-app/start` and `POST …/github-app/complete` (members): the authenticated half
 * of the GitHub App installation flow (`github-app-flow.ts`).
 */
export function githubAppRoutes(deps: AppDeps) {
  const router = createRouter();

  router.openapi(
    createRoute({
      method: "post",
      path: `${BASE}/start`,
      tags,
      security,
      summary: "Start connecting a GitHub App installation",
      description:
        "Returns the app's install page with a single-use state (10 minutes). After the install " +
        "GitHub sends the browser to `callbackUrl` (the app's User authorization callback URL), " +
        "which completes the connection.",
      request: { body: { ...json(githubAppStartBody), required: true } },
      responses: {
        201: { description: "Where to send the user", ...json(githubAppStartedSchema) },
        ...errorResponses,
        422: {
          description:
            "`target_not_found`, `target_disabled`, `method_not_found`, " +
            "`method_not_supported_here`, `github_app_not_configured` (the target lacks the " +
            "app slug or credentials; `details.missing` says what), `redirect_not_allowed` " +
            "(an open redirect in `redirectAfter`; audited)",
        },
      },
    }),
    async (c) => {
      const principal = requireRole(c.get("principal"), "member");
      return c.json(
        await startGitHubAppInstall(requestDeps(deps, c), principal, c.req.valid("json")),
        201,
      );
    },
  );

  router.openapi(
    createRoute({
      method: "post",
      path: `${BASE}/complete`,
      tags,
      security,
      summary: "Complete a GitHub App installation received by a console",
      description:
        "For consoles whose own page is the app's callback URL: forward the redirect's " +
        "`installation_id`, `setup_action`, `state` and `code`. The state must have been started " +
        "by the caller (same organization and principal).",
      request: { body: { ...json(githubAppCompleteBody), required: true } },
      responses: {
        200: {
          description: "Connected (reused or reconnected)",
          ...json(githubAppCompletedSchema),
        },
        201: { description: "Connected (created)", ...json(githubAppCompletedSchema) },
        ...errorResponses,
        ...refusals,
      },
    }),
    async (c) => {
      const principal = requireRole(c.get("principal"), "member");
      const body = c.req.valid("json");
      const done = await completeGitHubAppInstall(
        requestDeps(deps, c),
        {
          targetKey: body.targetKey,
          state: body.state,
          installationId: body.installationId,
          setupAction: body.setupAction,
          code: body.code,
        },
        { via: "api", requestId: c.get("requestId"), principal },
      );
      const answer = { connection: done.connection, outcome: done.outcome };
      return done.outcome === "created" ? c.json(answer, 201) : c.json(answer, 200);
    },
  );

  return router;
}

/**
 * `GET /p/integration/github-app/{targetKey}/callback`: where GitHub sends the browser after an
 * install (the app's User authorization callback URL). Public: the browser arrives without a
 * Keyway credential; the state and GitHub's user check stand in. Browsers (`Accept: text/html`)
 * get a small page; other clients JSON. A completed flow with a `redirectAfter` redirects there
 * with `connectionId`.
 */
export function githubAppCallbackRoutes(deps: AppDeps) {
  const router = createRouter();
  router.openapi(
    createRoute({
      method: "get",
      path: GITHUB_APP_CALLBACK_PATH,
      tags,
      summary: "GitHub App installation callback (public)",
      request: { params: githubAppCallbackParams, query: githubAppCallbackQuery },
      responses: {
        200: { description: "Connected: a result page, or JSON for non-browser clients" },
        302: { description: "Connected: back to `redirectAfter` with `connectionId`" },
        400: { description: "Malformed query" },
        404: { description: "Unknown or disabled target" },
        ...refusals,
      },
    }),
    async (c) => {
      const { targetKey } = c.req.valid("param");
      const query = c.req.valid("query");
      const browser = acceptsHtml(c);
      c.header("cache-control", "no-store");
      // The URL held a code and a state: never hand it on as a referrer.
      c.header("referrer-policy", "no-referrer");
      let done: CompletedInstall;
      try {
        done = await completeGitHubAppInstall(
          requestDeps(deps, c),
          {
            targetKey,
            state: query.state,
            installationId: query.installation_id,
            setupAction: query.setup_action,
            code: query.code,
          },
          { via: "callback-url", requestId: c.get("requestId") },
        );
      } catch (error) {
        if (!browser || !(error instanceof DomainError)) throw error;
        return resultPage(c, error.status, "GitHub App not connected", [
          error.message,
          `Error code: ${error.code}. Request id: ${c.get("requestId")}.`,
        ]);
      }
      if (done.redirectAfter !== null) {
        const back = new URL(done.redirectAfter);
        back.searchParams.set("connectionId", done.connection.id);
        return c.redirect(back.toString(), 302);
      }
      if (!browser) return c.json({ connection: done.connection, outcome: done.outcome }, 200);
      return resultPage(c, 200, "GitHub App connected", [
        `Connection ${done.connection.id} (“${done.connection.displayName}”) is ${done.outcome === "existing" ? "already connected" : "connected"}.`,
        "You can close this page.",
      ]);
    },
  );
  return router;
}

function acceptsHtml(c: Context<AppEnv>): boolean {
  return (c.req.header("accept") ?? "").toLowerCase().includes("text/html");
}

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};
const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (char) => ESCAPES[char] ?? char);

function resultPage(c: Context<AppEnv>, status: number, title: string, lines: string[]) {
  c.header("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'");
  const body = lines.map((line) => `<p>${escapeHtml(line)}</p>`).join("\n");
  return c.html(
    `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem}</style>
</head><body><h1>${escapeHtml(title)}</h1>
${body}
</body></html>`,
    status as 200,
  );
}
