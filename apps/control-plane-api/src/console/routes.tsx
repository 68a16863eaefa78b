import { randomBytes } from "node:crypto";
import { tokenKind } from "@keyway/crypto";
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { AppDeps } from "../deps";
import { type ApiFetch, apiCallerFor, apiError } from "./api-client";
import { CONSOLE_CSS, CONSOLE_JS } from "./assets";
import { type ConsoleEnv, renderPage } from "./context";
import { ErrorNotice, Page } from "./layout";
import { registerAuditPages } from "./pages/audit";
import { registerConnectionPages } from "./pages/connections";
import { registerOperatorPages } from "./pages/operator";
import { registerProfilePages } from "./pages/profiles";
import { registerSessionPages } from "./pages/sessions";
import { registerTokenPages } from "./pages/tokens";
import { registerWebhookPages } from "./pages/webhooks";
import { withoutAsyncContext } from "./render-context";
import { postedForm } from "./schema-form";
import {
  csrfMatches,
  newCsrfToken,
  openOidcRequest,
  openSession,
  pkceChallenge,
  SESSION_LIFETIME_MS,
  sealOidcRequest,
  sealSession,
} from "./session";

/**
 * No script or style but the console's own files, no framing, no plugins, forms only to the
 * console itself (OAuth and GitHub App starts leave by redirect, which `form-action` allows only
 * for the redirect's first hop in browsers that check it, hence the explicit https: source).
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self' https: http:",
  "frame-ancestors 'none'",
].join("; ");

/** The largest form the console reads (a version with many bindings stays far below). */
const MAX_FORM_BYTES = 512 * 1024;

export interface ConsoleOptions {
  /** The API app's request handler: every console page calls the public API through it. */
  fetchApi: ApiFetch;
}

/**
 * The web console under `/console`: server-rendered pages that call the public API as the
 * signed-in user (see `api-client.ts` and docs/console.md).
 */
export function consoleRoutes(deps: AppDeps, options: ConsoleOptions): Hono<ConsoleEnv> {
  // Before any page renders: hono/jsx must not settle on AsyncLocalStorage (`render-context.tsx`).
  withoutAsyncContext();
  const router = new Hono<ConsoleEnv>();
  const secure = deps.settings.publicUrl.startsWith("https:");
  // `__Host-` binds the cookie to this exact origin (Secure, Path=/, no Domain) behind HTTPS.
  const sessionCookie = secure ? "__Host-keyway_console" : "keyway_console";
  const signInCookie = secure ? "__Host-keyway_console_signin" : "keyway_console_signin";
  const cookieOptions = { httpOnly: true, sameSite: "Lax", secure, path: "/" } as const;
  const oidc = deps.consoleOidc;

  router.use("*", async (c, next) => {
    await next();
    c.header("content-security-policy", CONTENT_SECURITY_POLICY);
    c.header("x-frame-options", "DENY");
    c.header("x-content-type-options", "nosniff");
    c.header("referrer-policy", "same-origin");
    c.header("cross-origin-opener-policy", "same-origin");
  });

  // Forms are small; the API's own body limit covers only `/v1`.
  router.use(
    "*",
    bodyLimit({
      maxSize: MAX_FORM_BYTES,
      onError: (c) => c.text("form too large", 413),
    }),
  );

  router.get("/assets/console.css", (c) => {
    c.header("content-type", "text/css; charset=utf-8");
    c.header("cache-control", "public, max-age=300");
    return c.body(CONSOLE_CSS);
  });
  router.get("/assets/console.js", (c) => {
    c.header("content-type", "text/javascript; charset=utf-8");
    c.header("cache-control", "public, max-age=300");
    return c.body(CONSOLE_JS);
  });

  // ----- sign-in: a pre-session CSRF token in its own cookie (double submit) -----------------
  router.get("/sign-in", (c) => {
    const csrf = newCsrfToken();
    setCookie(c, signInCookie, csrf, { ...cookieOptions, maxAge: 600 });
    c.header("cache-control", "no-store");
    return c.html(
      <SignInPage csrf={csrf} expired={c.req.query("expired") === "1"} oidc={oidc !== undefined} />,
    );
  });

  router.post("/sign-in", async (c) => {
    const form = postedForm(await c.req.parseBody());
    const expected = getCookie(c, signInCookie);
    if (!expected || !csrfMatches(expected, form._csrf)) return csrfRefusal(c);
    const token = (form.token ?? "").trim();
    const kind = tokenKind(token);
    const api = apiCallerFor(options.fetchApi, token, c.get("requestId"));
    const refuse = (message: string) => {
      const csrf = newCsrfToken();
      setCookie(c, signInCookie, csrf, { ...cookieOptions, maxAge: 600 });
      return c.html(<SignInPage csrf={csrf} error={message} oidc={oidc !== undefined} />, 401);
    };
    if (kind !== "operator" && kind !== "organization")
      return refuse("That is not a Keyway operator or organization API token.");
    const probe = await api(
      "GET",
      kind === "operator" ? "/v1/operator/organizations" : "/v1/organization",
    );
    if (probe.status !== 200) return refuse("The API did not accept that token.");
    const name =
      typeof probe.body === "object" && probe.body !== null && "name" in probe.body
        ? String(probe.body.name)
        : "";
    const session = {
      token,
      csrf: newCsrfToken(),
      principal: kind,
      label: kind === "operator" ? "Operator" : name,
      expiresAt: deps.clock.now().getTime() + SESSION_LIFETIME_MS,
    } as const;
    deleteCookie(c, signInCookie, cookieOptions);
    setCookie(c, sessionCookie, sealSession(deps.keyRing, session), {
      ...cookieOptions,
      maxAge: SESSION_LIFETIME_MS / 1000,
    });
    return c.redirect("/console", 303);
  });

  // ----- OIDC: authorization code + PKCE; the access token becomes the session's credential ------
  const oidcCookie = secure ? "__Host-keyway_console_oidc" : "keyway_console_oidc";
  const callbackUrl = `${deps.settings.publicUrl.replace(/\/$/, "")}/console/sign-in/oidc/callback`;
  if (oidc) {
    router.get("/sign-in/oidc", (c) => {
      const pending = { state: newCsrfToken(), verifier: randomBytes(32).toString("base64url") };
      setCookie(c, oidcCookie, sealOidcRequest(deps.keyRing, pending), {
        ...cookieOptions,
        maxAge: 600,
      });
      const url = new URL(oidc.authorizationEndpoint);
      url.searchParams.set("response_type", "code");
      url.searchParams.set("client_id", oidc.clientId);
      url.searchParams.set("redirect_uri", callbackUrl);
      url.searchParams.set("scope", oidc.scopes);
      url.searchParams.set("state", pending.state);
      url.searchParams.set("code_challenge", pkceChallenge(pending.verifier));
      url.searchParams.set("code_challenge_method", "S256");
      return c.redirect(url.toString(), 303);
    });

    router.get("/sign-in/oidc/callback", async (c) => {
      const pending = openOidcRequest(deps.keyRing, getCookie(c, oidcCookie));
      deleteCookie(c, oidcCookie, cookieOptions);
      const refuse = (message: string) => {
        const csrf = newCsrfToken();
        setCookie(c, signInCookie, csrf, { ...cookieOptions, maxAge: 600 });
        return c.html(<SignInPage csrf={csrf} error={message} oidc />, 401);
      };
      const state = c.req.query("state");
      const code = c.req.query("code");
      if (!pending || !state || !csrfMatches(pending.state, state)) {
        return refuse("That sign-in link expired or was not started here. Try again.");
      }
      if (!code) return refuse("The identity provider did not sign you in.");
      const response = await deps.fetch(oidc.tokenEndpoint, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          accept: "application/json",
        },
        body: new URLSearchParams({
          grant_type: "authorization_code",
          code,
          redirect_uri: callbackUrl,
          client_id: oidc.clientId,
          code_verifier: pending.verifier,
        }).toString(),
      });
      const tokens: unknown = response.ok
        ? await response.json().catch(() => undefined)
        : undefined;
      const accessToken =
        typeof tokens === "object" && tokens !== null && "access_token" in tokens
          ? tokens.access_token
          : undefined;
      if (typeof accessToken !== "string") {
        return refuse("The identity provider did not issue a token.");
      }
      const probe = await apiCallerFor(
        options.fetchApi,
        accessToken,
        c.get("requestId"),
      )("GET", "/v1/organization");
      if (probe.status !== 200)
        return refuse("Keyway did not accept your identity provider's token.");
      const name =
        typeof probe.body === "object" && probe.body !== null && "name" in probe.body
          ? String(probe.body.name)
          : "";
      setCookie(
        c,
        sessionCookie,
        sealSession(deps.keyRing, {
          token: accessToken,
          csrf: newCsrfToken(),
          principal: "organization",
          label: name,
          expiresAt: deps.clock.now().getTime() + SESSION_LIFETIME_MS,
        }),
        { ...cookieOptions, maxAge: SESSION_LIFETIME_MS / 1000 },
      );
      return c.redirect("/console", 303);
    });
  }

  // ----- everything else needs a session; every POST its CSRF token -------------------------
  router.use("*", async (c, next) => {
    const session = openSession(deps.keyRing, getCookie(c, sessionCookie), deps.clock.now());
    if (!session) {
      if (c.req.method === "GET") return c.redirect("/console/sign-in", 303);
      return csrfRefusal(c);
    }
    c.set("session", session);
    c.set("api", apiCallerFor(options.fetchApi, session.token, c.get("requestId")));
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      const form = postedForm(await c.req.parseBody());
      if (!csrfMatches(session.csrf, form._csrf)) return csrfRefusal(c);
      c.set("form", form);
    }
    await next();
  });

  router.post("/sign-out", (c) => {
    deleteCookie(c, sessionCookie, cookieOptions);
    return c.redirect("/console/sign-in", 303);
  });

  router.get("/", (c) =>
    c.redirect(
      c.get("session").principal === "operator"
        ? "/console/operator/targets"
        : "/console/connections",
      303,
    ),
  );

  registerOperatorPages(router);
  registerConnectionPages(router, { publicUrl: deps.settings.publicUrl });
  registerProfilePages(router);
  registerSessionPages(router);
  registerWebhookPages(router);
  registerTokenPages(router);
  registerAuditPages(router);

  // Mounted with `app.route`, a sub-app's notFound is not used: this answers unknown pages.
  router.all("*", (c) => renderPage(c, "Not found", <p>No such page.</p>, 404));
  router.onError((error, c) => {
    deps.logger.error("console error", {
      requestId: c.get("requestId"),
      error: error instanceof Error ? error.name : "unknown",
    });
    return c.html(
      <Page title="Something went wrong" path={c.req.path} session={c.get("session")}>
        <ErrorNotice error={apiError({ status: 500, body: undefined })} />
      </Page>,
      500,
    );
  });
  return router;
}

function csrfRefusal(c: Context) {
  return c.html(
    <Page title="Form expired" path="/console">
      <p class="notice error" role="alert">
        This form was refused: its security token is missing or out of date. Go back, reload the
        page and try again.
      </p>
      <p>
        <a href="/console">Back to the console</a>
      </p>
    </Page>,
    403,
  );
}

function SignInPage(props: { csrf: string; error?: string; expired?: boolean; oidc?: boolean }) {
  return (
    <Page title="Sign in" path="/console/sign-in">
      {props.expired ? (
        <p class="notice" role="status">
          Your session ended. Sign in again.
        </p>
      ) : null}
      {props.error ? (
        <p class="notice error" role="alert">
          {props.error}
        </p>
      ) : null}
      {props.oidc ? (
        <p>
          <a class="button" href="/console/sign-in/oidc">
            Sign in with your organization's identity provider
          </a>
        </p>
      ) : null}
      <form method="post" action="/console/sign-in" class="stack">
        <input type="hidden" name="_csrf" value={props.csrf} />
        <div class="field">
          <label for="token">API token</label>
          <p class="help" id="token-help">
            An operator token (<code>kw_op_…</code>) or an organization API token (
            <code>kw_org_…</code>). It stays on the server, sealed in your session cookie.
          </p>
          <input
            type="password"
            id="token"
            name="token"
            required
            autocomplete="current-password"
            aria-describedby="token-help"
          />
        </div>
        <div>
          <button type="submit">Sign in</button>
        </div>
      </form>
    </Page>
  );
}
