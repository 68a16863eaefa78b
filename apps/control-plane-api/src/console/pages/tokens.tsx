import type { Hono } from "hono";
import { type ApiErrorView, apiError } from "../api-client";
import {
  apiFailurePage,
  type ConsoleContext,
  type ConsoleEnv,
  itemsOf,
  type Json,
  load,
  renderPage,
  seg,
  str,
} from "../context";
import { ActionButton, Copyable, Csrf, DoneNotice, ErrorNotice, formatInstant } from "../layout";

/** The organization's API tokens (admins): create (shown once), revoke. */
export function registerTokenPages(router: Hono<ConsoleEnv>): void {
  router.get("/tokens", (c) => tokensPage(c));

  router.post("/tokens", async (c) => {
    const form = c.get("form");
    const result = await c.get("api")("POST", "/v1/api-tokens", {
      name: form.name ?? "",
      role: form.role ?? "",
    });
    if (result.status !== 201 && result.status !== 200) {
      if (result.status === 403) return apiFailurePage(c, result);
      return tokensPage(c, apiError(result));
    }
    return tokensPage(c, undefined, result.body as Json);
  });

  router.post("/tokens/:id/revoke", async (c) => {
    const result = await c.get("api")("DELETE", `/v1/api-tokens/${seg(c.req.param("id"))}`);
    if (result.status !== 204 && result.status !== 200) return apiFailurePage(c, result);
    return c.redirect("/console/tokens?done=revoked", 303);
  });
}

async function tokensPage(c: ConsoleContext, error?: ApiErrorView, created?: Json) {
  const loaded = await load(c, "/v1/api-tokens");
  if (!loaded.ok) return loaded.response;
  const session = c.get("session");
  return renderPage(
    c,
    "API tokens",
    <>
      <DoneNotice done={c.req.query("done")} />
      {created ? (
        <section class="secret-once" aria-labelledby="token-heading">
          <h2 id="token-heading">New token {str(created.name)}</h2>
          <p>Shown once: copy it now.</p>
          <Copyable id="new-token" label="Token" text={str(created.token)} />
        </section>
      ) : null}
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Role</th>
              <th scope="col">Last used</th>
              <th scope="col">Revoked</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {itemsOf(loaded.body).map((token) => (
              <tr>
                <td>{str(token.name)}</td>
                <td>{str(token.role)}</td>
                <td>{formatInstant(token.lastUsedAt)}</td>
                <td>{formatInstant(token.revokedAt)}</td>
                <td>
                  {token.revokedAt ? null : (
                    <ActionButton
                      session={session}
                      action={`/console/tokens/${seg(str(token.id))}/revoke`}
                      label={`Revoke ${str(token.name)}`}
                      danger
                      confirm="Revoke this token? Clients using it stop working at once."
                    />
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h2 id="new-token-heading">New token</h2>
      <ErrorNotice error={error} />
      <form
        method="post"
        action="/console/tokens"
        class="stack"
        aria-labelledby="new-token-heading"
      >
        <Csrf session={session} />
        <div class="field">
          <label for="token-name">Name (required)</label>
          <input type="text" id="token-name" name="name" required />
        </div>
        <div class="field">
          <label for="token-role">Role</label>
          <select id="token-role" name="role">
            <option value="viewer">viewer</option>
            <option value="member">member</option>
            <option value="admin">admin</option>
          </select>
        </div>
        <div>
          <button type="submit">Create token</button>
        </div>
      </form>
    </>,
    error ? 400 : 200,
  );
}
