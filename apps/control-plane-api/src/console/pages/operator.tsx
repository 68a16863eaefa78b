import type { Hono } from "hono";
import { apiError } from "../api-client";
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
import { type FormIssue, readSchemaValues, SchemaFields } from "../schema-form";

/** Operator pages: targets, organizations and their first tokens, unassigned webhook events. */
export function registerOperatorPages(router: Hono<ConsoleEnv>): void {
  router.get("/operator/targets", async (c) => {
    const loaded = await load(c, "/v1/operator/targets");
    if (!loaded.ok) return loaded.response;
    return renderPage(c, "Targets", <TargetList c={c} targets={itemsOf(loaded.body)} />);
  });

  for (const action of ["enable", "disable"] as const) {
    router.post(`/operator/targets/:key/${action}`, async (c) => {
      const key = c.req.param("key");
      const result = await c.get("api")("POST", `/v1/operator/targets/${seg(key)}/${action}`);
      if (result.status !== 200) return apiFailurePage(c, result);
      return c.redirect(`/console/operator/targets?done=${action}d`, 303);
    });
  }

  router.get("/operator/targets/:key", (c) => targetPage(c));

  router.post("/operator/targets/:key/config", async (c) => {
    const key = c.req.param("key");
    const loaded = await load(c, `/v1/operator/targets/${seg(key)}`);
    if (!loaded.ok) return loaded.response;
    const form = c.get("form");
    const configSchema = asJson(asJson(loaded.body.forms).config);
    const body: Json = { config: readSchemaValues(configSchema, form, "config") };
    const displayName = (form.displayName ?? "").trim();
    body.displayName = displayName === "" ? null : displayName;
    const result = await c.get("api")("PATCH", `/v1/operator/targets/${seg(key)}`, body);
    if (result.status !== 200) return targetPage(c, { config: result, posted: body.config });
    return c.redirect(`/console/operator/targets/${seg(key)}?done=target-saved`, 303);
  });

  router.post("/operator/targets/:key/secrets", async (c) => {
    const key = c.req.param("key");
    const loaded = await load(c, `/v1/operator/targets/${seg(key)}`);
    if (!loaded.ok) return loaded.response;
    const secretsSchema = asJson(asJson(loaded.body.forms).secrets);
    const secrets = readSchemaValues(secretsSchema, c.get("form"), "secrets");
    const result = await c.get("api")("PUT", `/v1/operator/targets/${seg(key)}/secrets`, {
      secrets,
    });
    if (result.status !== 200) return targetPage(c, { secrets: result });
    return c.redirect(`/console/operator/targets/${seg(key)}?done=secrets-saved`, 303);
  });

  router.get("/operator/organizations", async (c) => {
    const loaded = await load(c, "/v1/operator/organizations");
    if (!loaded.ok) return loaded.response;
    return renderPage(c, "Organizations", <OrganizationList c={c} items={itemsOf(loaded.body)} />);
  });

  router.post("/operator/organizations", async (c) => {
    const form = c.get("form");
    const body: Json = { name: form.name ?? "" };
    if (form.adminTokenName?.trim()) body.adminTokenName = form.adminTokenName.trim();
    const result = await c.get("api")("POST", "/v1/operator/organizations", body);
    const loaded = await load(c, "/v1/operator/organizations");
    if (!loaded.ok) return loaded.response;
    if (result.status !== 201 && result.status !== 200) {
      return renderPage(
        c,
        "Organizations",
        <OrganizationList c={c} items={itemsOf(loaded.body)} error={apiError(result)} />,
        400,
      );
    }
    const created = asJson(result.body);
    return renderPage(
      c,
      "Organizations",
      <>
        <section class="secret-once" aria-labelledby="first-token">
          <h2 id="first-token">First admin token of {str(asJson(created.organization).name)}</h2>
          <p>Shown once. Hand it to the organization's administrator; it is never shown again.</p>
          <Copyable
            id="admin-token"
            label="Admin token"
            text={str(asJson(created.adminToken).token)}
          />
        </section>
        <OrganizationList c={c} items={itemsOf(loaded.body)} />
      </>,
    );
  });

  router.get("/operator/webhook-events", async (c) => {
    const loaded = await load(c, "/v1/operator/webhook-events?status=unassigned&limit=100");
    if (!loaded.ok) return loaded.response;
    const items = itemsOf(loaded.body);
    return renderPage(
      c,
      "Unassigned webhook events",
      <>
        <p>
          Events that reached the front door but match no organization's connection (an unknown
          installation, team or workspace).
        </p>
        {items.length === 0 ? (
          <p>None.</p>
        ) : (
          <div class="table-wrap">
            <table>
              <caption class="skip">Unassigned events</caption>
              <thead>
                <tr>
                  <th scope="col">Received</th>
                  <th scope="col">Target</th>
                  <th scope="col">Type</th>
                  <th scope="col">Subject</th>
                  <th scope="col">Delivery id</th>
                </tr>
              </thead>
              <tbody>
                {items.map((event) => (
                  <tr>
                    <td>{formatInstant(event.receivedAt)}</td>
                    <td>{str(event.targetKey)}</td>
                    <td>{str(event.eventType)}</td>
                    <td>{str(event.externalSubjectId) || "—"}</td>
                    <td>
                      <code>{str(event.externalDeliveryId)}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </>,
    );
  });
}

function TargetList({ c, targets }: { c: ConsoleContext; targets: Json[] }) {
  const session = c.get("session");
  return (
    <>
      <DoneNotice done={c.req.query("done")} />
      <p>Targets organizations may connect to. Disabled targets are hidden from organizations.</p>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Target</th>
              <th scope="col">Variant</th>
              <th scope="col">Status</th>
              <th scope="col">Config</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {targets.map((target) => {
              const key = str(target.targetKey);
              const name =
                str(target.displayName) || str(asJson(target.definition).displayName) || key;
              return (
                <tr>
                  <td>
                    <a href={`/console/operator/targets/${seg(key)}`}>{name}</a>
                    <br />
                    <code>{key}</code>
                  </td>
                  <td>{str(target.variantId)}</td>
                  <td>
                    <Status value={target.enabled === true ? "active" : "disabled"} />
                    <span class="skip">{target.enabled === true ? " enabled" : ""}</span>
                  </td>
                  <td>{target.configValid === true ? "valid" : "needs attention"}</td>
                  <td>
                    <ActionButton
                      session={session}
                      action={`/console/operator/targets/${seg(key)}/${target.enabled === true ? "disable" : "enable"}`}
                      label={`${target.enabled === true ? "Disable" : "Enable"} ${key}`}
                    />
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </>
  );
}

async function targetPage(
  c: ConsoleContext,
  failed: {
    config?: { status: number; body: unknown };
    posted?: unknown;
    secrets?: { status: number; body: unknown };
  } = {},
) {
  const key = c.req.param("key") ?? "";
  const loaded = await load(c, `/v1/operator/targets/${seg(key)}`);
  if (!loaded.ok) return loaded.response;
  const target = loaded.body;
  const forms = asJson(target.forms);
  const session = c.get("session");
  const configError = failed.config ? apiError(failed.config) : undefined;
  const secretsError = failed.secrets ? apiError(failed.secrets) : undefined;
  const configIssues: FormIssue[] = [
    ...(configError?.issues ?? []),
    ...(Array.isArray(target.configIssues) ? (target.configIssues as FormIssue[]) : []),
  ];
  const name = str(target.displayName) || str(asJson(target.definition).displayName) || key;
  const secretFields = Array.isArray(target.secretFields) ? target.secretFields.map(String) : [];
  return renderPage(
    c,
    `Target ${name}`,
    <>
      <DoneNotice done={c.req.query("done")} />
      <dl class="facts">
        <dt>Key</dt>
        <dd>
          <code>{key}</code>
        </dd>
        <dt>Variant</dt>
        <dd>{str(target.variantId)}</dd>
        <dt>Status</dt>
        <dd>{target.enabled === true ? "enabled" : "disabled"}</dd>
        <dt>Secrets set</dt>
        <dd>{secretFields.length > 0 ? secretFields.join(", ") : "none"}</dd>
      </dl>
      <div class="actions">
        <ActionButton
          session={session}
          action={`/console/operator/targets/${seg(key)}/${target.enabled === true ? "disable" : "enable"}`}
          label={target.enabled === true ? "Disable" : "Enable"}
        />
      </div>

      <h2 id="config-heading">Configuration</h2>
      <ErrorNotice error={configError} />
      <form
        method="post"
        action={`/console/operator/targets/${seg(key)}/config`}
        class="stack"
        aria-labelledby="config-heading"
      >
        <Csrf session={session} />
        <div class="field">
          <label for="displayName">Display name</label>
          <input type="text" id="displayName" name="displayName" value={str(target.displayName)} />
        </div>
        <SchemaFields
          schema={asJson(forms.config)}
          name="config"
          issuePath="config"
          values={failed.posted ?? target.config}
          issues={configIssues}
        />
        <div>
          <button type="submit">Save configuration</button>
        </div>
      </form>

      <h2 id="secrets-heading">Secrets</h2>
      <p>
        Write-only: values are never shown. Saving replaces the whole set with the fields you fill
        in.
      </p>
      <ErrorNotice error={secretsError} />
      <form
        method="post"
        action={`/console/operator/targets/${seg(key)}/secrets`}
        class="stack"
        aria-labelledby="secrets-heading"
      >
        <Csrf session={session} />
        <SchemaFields
          schema={asJson(forms.secrets)}
          name="secrets"
          issuePath="secrets"
          issues={secretsError?.issues ?? []}
          secret
        />
        <div>
          <button type="submit">Replace secrets</button>
        </div>
      </form>
    </>,
    configError || secretsError ? 400 : 200,
  );
}

function OrganizationList(props: {
  c: ConsoleContext;
  items: Json[];
  error?: ReturnType<typeof apiError>;
}) {
  const session = props.c.get("session");
  return (
    <>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Id</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {props.items.map((org) => (
              <tr>
                <td>{str(org.name)}</td>
                <td>
                  <code>{str(org.id)}</code>
                </td>
                <td>{formatInstant(org.createdAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h2 id="new-org">New organization</h2>
      <ErrorNotice error={props.error} />
      <form
        method="post"
        action="/console/operator/organizations"
        class="stack"
        aria-labelledby="new-org"
      >
        <Csrf session={session} />
        <div class="field">
          <label for="org-name">Name (required)</label>
          <input type="text" id="org-name" name="name" required />
        </div>
        <div class="field">
          <label for="org-token-name">First admin token's name</label>
          <input
            type="text"
            id="org-token-name"
            name="adminTokenName"
            placeholder="initial admin"
          />
        </div>
        <div>
          <button type="submit">Create organization</button>
        </div>
      </form>
    </>
  );
}
