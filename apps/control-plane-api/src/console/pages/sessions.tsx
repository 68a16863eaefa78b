import type { Hono } from "hono";
import { type ApiErrorView, apiError } from "../api-client";
import {
  apiFailurePage,
  asJson,
  type ConsoleContext,
  type ConsoleEnv,
  itemsOf,
  type Json,
  load,
  renderPage,
  seg,
  str,
} from "../context";
import {
  ActionButton,
  Copyable,
  Csrf,
  DoneNotice,
  ErrorNotice,
  formatInstant,
  Status,
} from "../layout";

/** Sandbox sessions: start one (with the command and environment to copy), list, revoke. */
export function registerSessionPages(router: Hono<ConsoleEnv>): void {
  router.get("/sessions", (c) => sessionsPage(c));

  router.post("/sessions", async (c) => {
    const form = c.get("form");
    const body: Json = { profileId: form.profileId ?? "" };
    if (form.version?.trim()) body.version = Number(form.version);
    const result = await c.get("api")("POST", "/v1/sandbox-sessions", body);
    if (result.status !== 201 && result.status !== 200) return sessionsPage(c, apiError(result));
    return sessionsPage(c, undefined, asJson(result.body));
  });

  router.post("/sessions/:id/revoke", async (c) => {
    const result = await c.get("api")("DELETE", `/v1/sandbox-sessions/${seg(c.req.param("id"))}`);
    if (result.status !== 200 && result.status !== 204) return apiFailurePage(c, result);
    return c.redirect("/console/sessions?done=revoked", 303);
  });
}

async function sessionsPage(c: ConsoleContext, error?: ApiErrorView, started?: Json) {
  const [sessions, profiles] = await Promise.all([
    load(c, "/v1/sandbox-sessions"),
    load(c, "/v1/sandbox-profiles"),
  ]);
  if (!sessions.ok) return sessions.response;
  if (!profiles.ok) return profiles.response;
  const session = c.get("session");
  const profileItems = itemsOf(profiles.body);
  return renderPage(
    c,
    "Sandbox sessions",
    <>
      <DoneNotice done={c.req.query("done")} />
      {started ? <StartedSession started={started} /> : null}
      <h2 id="start">Start a session</h2>
      <ErrorNotice error={error} />
      <form method="post" action="/console/sessions" class="stack" aria-labelledby="start">
        <Csrf session={session} />
        <div class="field">
          <label for="profileId">Profile</label>
          <select id="profileId" name="profileId" required>
            {profileItems.map((profile) => (
              <option value={str(profile.id)}>{str(profile.name)}</option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="version">Version</label>
          <p class="help" id="version-help">
            Empty: the profile's latest version.
          </p>
          <input
            type="number"
            id="version"
            name="version"
            min="1"
            aria-describedby="version-help"
          />
        </div>
        <div>
          <button type="submit">Start session</button>
        </div>
      </form>
      <h2>Sessions</h2>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Id</th>
              <th scope="col">Profile version</th>
              <th scope="col">Status</th>
              <th scope="col">Expires</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {itemsOf(sessions.body).map((item) => (
              <tr>
                <td>
                  <code>{str(item.id)}</code>
                </td>
                <td>{str(item.profileVersion)}</td>
                <td>
                  <Status value={str(item.status)} />
                </td>
                <td>{formatInstant(item.expiresAt)}</td>
                <td>
                  {item.status === "active" ? (
                    <ActionButton
                      session={session}
                      action={`/console/sessions/${seg(str(item.id))}/revoke`}
                      label={`Revoke ${str(item.id)}`}
                      danger
                      confirm="Revoke this session? The sandbox loses access at once."
                    />
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>,
    error ? 400 : 200,
  );
}

function StartedSession({ started }: { started: Json }) {
  const proxyEnv = asJson(started.proxyEnv);
  const envLines = [
    ...Object.entries(proxyEnv).map(([name, value]) => `export ${name}=${shellQuote(str(value))}`),
    ...(Array.isArray(started.caEnvVars) ? started.caEnvVars : []).map(
      (name) => `export ${String(name)}="$PWD/keyway-gateway-ca.pem"`,
    ),
    ...(Array.isArray(started.env) ? started.env : []).map((raw) => {
      const variable = asJson(raw);
      return `export ${str(variable.name)}=${shellQuote(str(variable.value))}`;
    }),
  ];
  const command = `keyway sandbox run --profile ${str(started.profileId)} --version ${str(started.profileVersion)} -- <command>`;
  return (
    <section class="secret-once" aria-labelledby="started-heading">
      <h2 id="started-heading">Session {str(started.id)} started</h2>
      <p>
        The environment below holds the session's token: paste it only inside the sandbox. It is not
        shown again; revoke the session when the sandbox is done.
      </p>
      <Copyable id="run-command" label="Run a command in a sandbox with the CLI" text={command} />
      <Copyable
        id="session-env"
        label="Environment (for a container runtime)"
        text={envLines.join("\n")}
      />
      <Copyable
        id="session-ca"
        label="Gateway CA (save as keyway-gateway-ca.pem)"
        text={str(started.caCertPem)}
      />
    </section>
  );
}

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`;
}
