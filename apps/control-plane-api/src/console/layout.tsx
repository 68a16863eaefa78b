import type { Child } from "hono/jsx";
import type { ApiErrorView } from "./api-client";
import type { ConsoleSession } from "./session";

/** Links of the navigation, by who is signed in. */
const ORGANIZATION_NAV = [
  ["/console/connections", "Connections"],
  ["/console/profiles", "Profiles"],
  ["/console/sessions", "Sessions"],
  ["/console/webhooks", "Webhooks"],
  ["/console/tokens", "API tokens"],
  ["/console/audit", "Audit"],
] as const;
const OPERATOR_NAV = [
  ["/console/operator/targets", "Targets"],
  ["/console/operator/organizations", "Organizations"],
  ["/console/operator/webhook-events", "Unassigned events"],
  ["/console/audit", "Audit"],
] as const;

export interface PageProps {
  title: string;
  /** Path of the current page, for `aria-current`. */
  path: string;
  session?: ConsoleSession | undefined;
  children?: Child;
}

export function Page({ title, path, session, children }: PageProps) {
  const nav = session?.principal === "operator" ? OPERATOR_NAV : ORGANIZATION_NAV;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${title} · Keyway console`}</title>
        <link rel="stylesheet" href="/console/assets/console.css" />
        <script src="/console/assets/console.js" defer />
      </head>
      <body>
        <a class="skip" href="#content">
          Skip to content
        </a>
        <header class="top">
          <a class="brand" href="/console">
            Keyway console
          </a>
          {session ? (
            <div class="actions">
              <span class="who">{session.label}</span>
              <form method="post" action="/console/sign-out">
                <input type="hidden" name="_csrf" value={session.csrf} />
                <button type="submit" class="secondary">
                  Sign out
                </button>
              </form>
            </div>
          ) : null}
        </header>
        {session ? (
          <nav class="main" aria-label="Main">
            <ul>
              {nav.map(([href, label]) => (
                <li>
                  <a href={href} aria-current={path.startsWith(href) ? "page" : undefined}>
                    {label}
                  </a>
                </li>
              ))}
            </ul>
          </nav>
        ) : null}
        <main id="content" tabindex={-1}>
          <h1>{title}</h1>
          {children}
        </main>
      </body>
    </html>
  );
}

/** The session's CSRF token, in every form that changes something. */
export function Csrf({ session }: { session: ConsoleSession }) {
  return <input type="hidden" name="_csrf" value={session.csrf} />;
}

/** A one-button form posting to `action` (e.g. revoke, test, replay). */
export function ActionButton(props: {
  session: ConsoleSession;
  action: string;
  label: string;
  danger?: boolean;
  confirm?: string;
  hidden?: Record<string, string>;
}) {
  return (
    <form method="post" action={props.action} data-confirm={props.confirm}>
      <Csrf session={props.session} />
      {Object.entries(props.hidden ?? {}).map(([name, value]) => (
        <input type="hidden" name={name} value={value} />
      ))}
      <button type="submit" class={props.danger ? "danger" : "secondary"}>
        {props.label}
      </button>
    </form>
  );
}

export function ErrorNotice({ error }: { error?: ApiErrorView | undefined }) {
  if (!error) return null;
  return (
    <div class="notice error" role="alert">
      <p>
        <strong>{error.message}</strong> <code>{error.code}</code>
      </p>
      {error.issues.length > 0 ? (
        <ul>
          {error.issues.map((issue) => (
            <li>
              <code>{issue.field || "(request)"}</code>: {issue.message}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

/** Fixed success messages shown after a redirect (`?done=<key>`); never text from the URL. */
export const DONE_MESSAGES: Record<string, string> = {
  enabled: "Target enabled.",
  disabled: "Target disabled.",
  "target-saved": "Target configuration saved.",
  "secrets-saved": "Target secrets replaced.",
  created: "Created.",
  deleted: "Deleted.",
  rotated: "Secret rotated.",
  revoked: "Revoked.",
  replayed: "Delivery queued again.",
  connected: "Connection ready.",
  updated: "Saved.",
};

export function DoneNotice({ done }: { done?: string | undefined }) {
  const message = done ? DONE_MESSAGES[done] : undefined;
  if (!message) return null;
  return (
    <p class="notice ok" role="status">
      {message}
    </p>
  );
}

export function Status({ value }: { value: string }) {
  return <span class={`status-${value}`}>{value}</span>;
}

/** A value to copy, with a button (the script copies; without it the text is still selectable). */
export function Copyable({ id, label, text }: { id: string; label: string; text: string }) {
  return (
    <div class="field">
      <div class="actions">
        <strong id={`${id}-label`}>{label}</strong>
        <button type="button" class="secondary" data-copy={id} aria-describedby={`${id}-label`}>
          Copy
        </button>
        <span id={`${id}-copied`} role="status" />
      </div>
      <pre id={id}>{text}</pre>
    </div>
  );
}

export function formatInstant(value: unknown): string {
  return typeof value === "string" ? value.replace("T", " ").replace(/\.\d+Z$/, "Z") : "—";
}
