import type { Hono } from "hono";
import { type ApiErrorView, type ApiResult, apiError } from "../api-client";
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
import { ActionButton, Csrf, DoneNotice, ErrorNotice, formatInstant, Status } from "../layout";
import { type FormIssue, type PostedForm, readSchemaValues, SchemaFields } from "../schema-form";

/** Methods whose credential is typed into a form; the others start in the provider's browser flow. */
const FORM_METHODS = new Set(["api-key", "oauth2-client-credentials"]);
const BROWSER_FLOWS: Record<string, string> = {
  "oauth2-authorization-code": "/v1/integration/connections/oauth2/start",
  "github-app-installation": "/v1/integration/connections/github-app/start",
};

/**
 * Organization connections: the API-key (and client-credentials) form generated from the method's
 * config schema and secret fields; "Connect" for OAuth2 and GitHub App installations, which leave
 * for the provider and come back to this page (`redirectAfter`); test, rotate, reconnect, delete.
 */
export function registerConnectionPages(
  router: Hono<ConsoleEnv>,
  options: { publicUrl: string },
): void {
  const backToConsole = `${options.publicUrl.replace(/\/$/, "")}/console/connections?done=connected`;

  router.get("/connections", async (c) => {
    const [connections, targets] = await Promise.all([
      load(c, "/v1/integration/connections"),
      load(c, "/v1/integration/targets"),
    ]);
    if (!connections.ok) return connections.response;
    if (!targets.ok) return targets.response;
    return renderPage(
      c,
      "Connections",
      <ConnectionList
        c={c}
        connections={itemsOf(connections.body)}
        targets={itemsOf(targets.body)}
      />,
    );
  });

  router.get("/connections/new", (c) => newConnectionPage(c));

  router.post("/connections/new", async (c) => {
    const form = c.get("form");
    const target = await load(c, `/v1/integration/targets/${seg(form.targetKey ?? "")}`);
    if (!target.ok) return target.response;
    const method = methodOf(target.body, form.methodId);
    if (!method || !FORM_METHODS.has(str(method.kind))) {
      return renderPage(
        c,
        "New connection",
        <p class="notice error">Unknown connection method.</p>,
        400,
      );
    }
    const body = {
      targetKey: form.targetKey,
      methodId: form.methodId,
      displayName: form.displayName ?? "",
      config: readSchemaValues(asJson(method.configForm), form, "config"),
      secrets: readSecrets(method, form),
    };
    const result = await c.get("api")("POST", "/v1/integration/connections", body);
    if (result.status !== 201 && result.status !== 200) {
      return newConnectionPage(c, { result, form });
    }
    return c.redirect(`/console/connections/${seg(str(asJson(result.body).id))}?done=created`, 303);
  });

  // OAuth2 and GitHub App: the API returns the provider's URL; the browser goes there and the
  // API's callback brings it back to `redirectAfter`.
  router.post("/connections/connect", async (c) => {
    const form = c.get("form");
    const target = await load(c, `/v1/integration/targets/${seg(form.targetKey ?? "")}`);
    if (!target.ok) return target.response;
    const method = methodOf(target.body, form.methodId);
    const start = method ? BROWSER_FLOWS[str(method.kind)] : undefined;
    if (!method || !start) {
      return renderPage(c, "Connect", <p class="notice error">Unknown connection method.</p>, 400);
    }
    const result = await c.get("api")("POST", start, {
      targetKey: form.targetKey,
      methodId: form.methodId,
      displayName: form.displayName?.trim() || str(target.body.displayName),
      redirectAfter: backToConsole,
    });
    const started = asJson(result.body);
    const url = str(started.authorizationUrl) || str(started.installUrl) || str(started.url);
    if ((result.status !== 200 && result.status !== 201) || !/^https?:\/\//.test(url)) {
      return apiFailurePage(
        c,
        result.status === 200 || result.status === 201 ? { status: 502, body: undefined } : result,
      );
    }
    return c.redirect(url, 303);
  });

  router.get("/connections/:id", (c) => connectionPage(c));

  router.post("/connections/:id/test", async (c) => {
    const result = await c.get("api")(
      "POST",
      `/v1/integration/connections/${seg(c.req.param("id"))}/test`,
    );
    if (result.status !== 200) return connectionPage(c, { error: apiError(result) });
    return connectionPage(c, { test: asJson(result.body) });
  });

  router.post("/connections/:id/rotate", async (c) => {
    const id = c.req.param("id");
    const connection = await load(c, `/v1/integration/connections/${seg(id)}`);
    if (!connection.ok) return connection.response;
    const target = await load(c, `/v1/integration/targets/${seg(str(connection.body.targetKey))}`);
    if (!target.ok) return target.response;
    const method = methodOf(target.body, str(connection.body.methodId));
    const result = await c.get("api")("POST", `/v1/integration/connections/${seg(id)}/secret`, {
      secrets: method ? readSecrets(method, c.get("form")) : {},
    });
    if (result.status !== 200) return connectionPage(c, { error: apiError(result) });
    return c.redirect(`/console/connections/${seg(id)}?done=rotated`, 303);
  });

  router.post("/connections/:id/delete", async (c) => {
    const result = await c.get("api")(
      "DELETE",
      `/v1/integration/connections/${seg(c.req.param("id"))}`,
    );
    if (result.status !== 204 && result.status !== 200) return apiFailurePage(c, result);
    return c.redirect("/console/connections?done=deleted", 303);
  });
}

function methodOf(target: Json, methodId: string | undefined): Json | undefined {
  const methods = Array.isArray(target.connectionMethods) ? target.connectionMethods : [];
  return methods.map(asJson).find((method) => method.id === methodId);
}

function secretFieldsOf(method: Json): string[] {
  return Array.isArray(method.secretFields) ? method.secretFields.map(String) : [];
}

function readSecrets(method: Json, form: PostedForm): Record<string, string> {
  const secrets: Record<string, string> = {};
  for (const field of secretFieldsOf(method)) {
    const value = form[`secrets.${field}`];
    if (value !== undefined && value !== "") secrets[field] = value;
  }
  return secrets;
}

function SecretInputs(props: { method: Json; issues: readonly FormIssue[] }) {
  return (
    <>
      {secretFieldsOf(props.method).map((field) => {
        const id = `f-secrets-${field}`;
        const mine = props.issues.filter(
          (issue) => issue.field === `secrets.${field}` || issue.field === "secrets",
        );
        return (
          <div class="field">
            <label for={id}>{`${field} (write-only)`}</label>
            <input
              type="password"
              id={id}
              name={`secrets.${field}`}
              autocomplete="new-password"
              required
              aria-invalid={mine.length > 0 ? "true" : undefined}
              aria-describedby={mine.length > 0 ? `${id}-issue` : undefined}
            />
            {mine.length > 0 ? (
              <p class="issue" id={`${id}-issue`}>
                {mine.map((issue) => issue.message).join("; ")}
              </p>
            ) : null}
          </div>
        );
      })}
    </>
  );
}

function ConnectionList(props: { c: ConsoleContext; connections: Json[]; targets: Json[] }) {
  const session = props.c.get("session");
  return (
    <>
      <DoneNotice done={props.c.req.query("done")} />
      {props.connections.length === 0 ? (
        <p>No connections yet.</p>
      ) : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Target</th>
                <th scope="col">Method</th>
                <th scope="col">Status</th>
                <th scope="col">Last error</th>
              </tr>
            </thead>
            <tbody>
              {props.connections.map((connection) => (
                <tr>
                  <td>
                    <a href={`/console/connections/${seg(str(connection.id))}`}>
                      {str(connection.displayName)}
                    </a>
                  </td>
                  <td>{str(connection.targetKey)}</td>
                  <td>{str(connection.methodKind)}</td>
                  <td>
                    <Status value={str(connection.status)} />
                  </td>
                  <td>{str(connection.lastError) || "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <h2>New connection</h2>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Target</th>
              <th scope="col">Ways to connect</th>
            </tr>
          </thead>
          <tbody>
            {props.targets.map((target) => (
              <tr>
                <td>
                  {str(target.displayName)}
                  <br />
                  <code>{str(target.targetKey)}</code>
                </td>
                <td>
                  <div class="actions">
                    {(Array.isArray(target.connectionMethods) ? target.connectionMethods : []).map(
                      (raw: unknown) => {
                        const method = asJson(raw);
                        const kind = str(method.kind);
                        const label = `${str(method.label)} for ${str(target.displayName)}`;
                        if (FORM_METHODS.has(kind)) {
                          return (
                            <a
                              class="button"
                              href={`/console/connections/new?target=${seg(str(target.targetKey))}&method=${seg(str(method.id))}`}
                              aria-label={label}
                            >
                              {str(method.label)}
                            </a>
                          );
                        }
                        if (BROWSER_FLOWS[kind]) {
                          return (
                            <form method="post" action="/console/connections/connect">
                              <Csrf session={session} />
                              <input type="hidden" name="targetKey" value={str(target.targetKey)} />
                              <input type="hidden" name="methodId" value={str(method.id)} />
                              <button type="submit" aria-label={`Connect: ${label}`}>
                                {`Connect: ${str(method.label)}`}
                              </button>
                            </form>
                          );
                        }
                        return null;
                      },
                    )}
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

async function newConnectionPage(
  c: ConsoleContext,
  failed?: { result: ApiResult; form: PostedForm },
) {
  const targetKey = failed?.form.targetKey ?? c.req.query("target") ?? "";
  const methodId = failed?.form.methodId ?? c.req.query("method") ?? "";
  const target = await load(c, `/v1/integration/targets/${seg(targetKey)}`);
  if (!target.ok) return target.response;
  const method = methodOf(target.body, methodId);
  if (!method)
    return renderPage(
      c,
      "New connection",
      <p class="notice error">Unknown connection method.</p>,
      404,
    );
  const error = failed ? apiError(failed.result) : undefined;
  const posted = failed
    ? readSchemaValues(asJson(method.configForm), failed.form, "config")
    : undefined;
  const session = c.get("session");
  return renderPage(
    c,
    `Connect ${str(target.body.displayName)}: ${str(method.label)}`,
    <>
      <ErrorNotice error={error} />
      <form method="post" action="/console/connections/new" class="stack">
        <Csrf session={session} />
        <input type="hidden" name="targetKey" value={targetKey} />
        <input type="hidden" name="methodId" value={methodId} />
        <div class="field">
          <label for="displayName">Display name (required)</label>
          <input
            type="text"
            id="displayName"
            name="displayName"
            required
            value={failed?.form.displayName ?? str(target.body.displayName)}
            aria-invalid={error?.issues.some((i) => i.field === "displayName") ? "true" : undefined}
          />
          <FieldIssues error={error} field="displayName" />
        </div>
        <SchemaFields
          schema={asJson(method.configForm)}
          name="config"
          issuePath="config"
          values={posted}
          issues={error?.issues ?? []}
        />
        <SecretInputs method={method} issues={error?.issues ?? []} />
        <div>
          <button type="submit">Create connection</button>
        </div>
      </form>
    </>,
    error ? (failed?.result.status === 422 ? 422 : 400) : 200,
  );
}

function FieldIssues({ error, field }: { error?: ApiErrorView | undefined; field: string }) {
  const mine = error?.issues.filter((issue) => issue.field === field) ?? [];
  if (mine.length === 0) return null;
  return <p class="issue">{mine.map((issue) => issue.message).join("; ")}</p>;
}

async function connectionPage(
  c: ConsoleContext,
  extra: { test?: Json; error?: ApiErrorView } = {},
) {
  const id = c.req.param("id") ?? "";
  const loaded = await load(c, `/v1/integration/connections/${seg(id)}`);
  if (!loaded.ok) return loaded.response;
  const connection = loaded.body;
  const target = await load(c, `/v1/integration/targets/${seg(str(connection.targetKey))}`);
  const method = target.ok ? methodOf(target.body, str(connection.methodId)) : undefined;
  const session = c.get("session");
  const kind = str(connection.methodKind);
  const base = `/console/connections/${seg(id)}`;
  const secretFields = Array.isArray(connection.secretFields)
    ? connection.secretFields.map(String)
    : [];
  return renderPage(
    c,
    `Connection ${str(connection.displayName)}`,
    <>
      <DoneNotice done={c.req.query("done")} />
      <ErrorNotice error={extra.error} />
      {extra.test ? (
        <p class={`notice ${extra.test.ok === false ? "error" : "ok"}`} role="status">
          Test:{" "}
          {extra.test.ok === true ? "passed" : extra.test.ok === false ? "failed" : "not available"}{" "}
          — {str(extra.test.message)}
        </p>
      ) : null}
      <dl class="facts">
        <dt>Id</dt>
        <dd>
          <code>{id}</code>
        </dd>
        <dt>Target</dt>
        <dd>{str(connection.targetKey)}</dd>
        <dt>Method</dt>
        <dd>{kind}</dd>
        <dt>Status</dt>
        <dd>
          <Status value={str(connection.status)} />
        </dd>
        <dt>Last error</dt>
        <dd>{str(connection.lastError) || "—"}</dd>
        <dt>Credential version</dt>
        <dd>{str(connection.credentialVersion)}</dd>
        <dt>Credential expires</dt>
        <dd>{formatInstant(connection.credentialExpiresAt)}</dd>
        <dt>Secret fields</dt>
        <dd>{secretFields.join(", ") || "—"}</dd>
        <dt>External subject</dt>
        <dd>{str(connection.externalSubjectId) || "—"}</dd>
        <dt>Updated</dt>
        <dd>{formatInstant(connection.updatedAt)}</dd>
      </dl>
      <div class="actions">
        <ActionButton session={session} action={`${base}/test`} label="Test credential" />
        {BROWSER_FLOWS[kind] ? (
          <ActionButton
            session={session}
            action="/console/connections/connect"
            label="Reconnect"
            hidden={{
              targetKey: str(connection.targetKey),
              methodId: str(connection.methodId),
              displayName: str(connection.displayName),
            }}
          />
        ) : null}
        <ActionButton
          session={session}
          action={`${base}/delete`}
          label="Delete connection"
          danger
          confirm="Delete this connection? Profile versions binding it stop compiling."
        />
      </div>
      {method && FORM_METHODS.has(kind) ? (
        <>
          <h2 id="rotate-heading">Rotate or reconnect with a new secret</h2>
          <form
            method="post"
            action={`${base}/rotate`}
            class="stack"
            aria-labelledby="rotate-heading"
          >
            <Csrf session={session} />
            <SecretInputs method={method} issues={extra.error?.issues ?? []} />
            <div>
              <button type="submit">Rotate secret</button>
            </div>
          </form>
        </>
      ) : null}
    </>,
    extra.error ? 400 : 200,
  );
}
