import type { Hono } from "hono";
import { type ApiErrorView, apiError } from "../api-client";
import {
  asJson,
  asList,
  type ConsoleContext,
  type ConsoleEnv,
  itemsOf,
  type Json,
  load,
  renderPage,
  seg,
  str,
} from "../context";
import { Csrf, DoneNotice, ErrorNotice, formatInstant } from "../layout";
import { type FormIssue, type PostedForm, readSchemaValues, SchemaFields } from "../schema-form";

interface DraftBinding {
  connectionId: string;
  kind: string;
  config: Json;
}

interface Draft {
  bindings: DraftBinding[];
  egressDefault: string;
  allowHosts: string;
}

/**
 * Profiles and their immutable versions: the binding editor (each binding's config form from its
 * target's binding schema; the API's issues shown at the field or binding they name), the
 * compiled plan, and a side-by-side comparison of two versions' plans.
 */
export function registerProfilePages(router: Hono<ConsoleEnv>): void {
  router.get("/profiles", async (c) => {
    const loaded = await load(c, "/v1/sandbox-profiles");
    if (!loaded.ok) return loaded.response;
    return renderPage(c, "Profiles", <ProfileList c={c} items={itemsOf(loaded.body)} />);
  });

  router.post("/profiles", async (c) => {
    const form = c.get("form");
    const body: Json = { name: form.name ?? "" };
    if (form.description?.trim()) body.description = form.description.trim();
    const result = await c.get("api")("POST", "/v1/sandbox-profiles", body);
    if (result.status !== 201 && result.status !== 200) {
      const loaded = await load(c, "/v1/sandbox-profiles");
      if (!loaded.ok) return loaded.response;
      return renderPage(
        c,
        "Profiles",
        <ProfileList c={c} items={itemsOf(loaded.body)} error={apiError(result)} />,
        result.status === 409 ? 409 : 400,
      );
    }
    return c.redirect(`/console/profiles/${seg(str(asJson(result.body).id))}?done=created`, 303);
  });

  router.get("/profiles/:id", async (c) => {
    const id = c.req.param("id");
    const [profile, versions] = await Promise.all([
      load(c, `/v1/sandbox-profiles/${seg(id)}`),
      load(c, `/v1/sandbox-profiles/${seg(id)}/versions`),
    ]);
    if (!profile.ok) return profile.response;
    if (!versions.ok) return versions.response;
    const items = itemsOf(versions.body);
    const base = `/console/profiles/${seg(id)}`;
    return renderPage(
      c,
      `Profile ${str(profile.body.name)}`,
      <>
        <DoneNotice done={c.req.query("done")} />
        <p>{str(profile.body.description)}</p>
        <p>
          <a class="button" href={`${base}/versions/new`}>
            New version
          </a>
        </p>
        <h2>Versions</h2>
        {items.length === 0 ? (
          <p>No versions yet.</p>
        ) : (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Version</th>
                  <th scope="col">Bindings</th>
                  <th scope="col">Created</th>
                  <th scope="col">Plan</th>
                </tr>
              </thead>
              <tbody>
                {items.map((version) => (
                  <tr>
                    <td>{str(version.version)}</td>
                    <td>{str(version.bindingCount)}</td>
                    <td>{formatInstant(version.createdAt)}</td>
                    <td>
                      <a href={`${base}/versions/${seg(str(version.version))}/plan`}>
                        Plan of version {str(version.version)}
                      </a>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {items.length >= 2 ? (
          <>
            <h2 id="compare">Compare two versions</h2>
            <form method="get" action={`${base}/diff`} class="stack" aria-labelledby="compare">
              <div class="field">
                <label for="from">From version</label>
                <select id="from" name="from">
                  {items.map((version, index) => (
                    <option value={str(version.version)} selected={index === 1}>
                      {str(version.version)}
                    </option>
                  ))}
                </select>
              </div>
              <div class="field">
                <label for="to">To version</label>
                <select id="to" name="to">
                  {items.map((version, index) => (
                    <option value={str(version.version)} selected={index === 0}>
                      {str(version.version)}
                    </option>
                  ))}
                </select>
              </div>
              <div>
                <button type="submit">Compare</button>
              </div>
            </form>
          </>
        ) : null}
      </>,
    );
  });

  router.get("/profiles/:id/versions/new", async (c) => {
    const id = c.req.param("id");
    const profile = await load(c, `/v1/sandbox-profiles/${seg(id)}`);
    if (!profile.ok) return profile.response;
    const latest = Number(profile.body.latestVersion ?? 0);
    let draft: Draft = { bindings: [], egressDefault: "", allowHosts: "" };
    if (latest > 0) {
      const version = await load(c, `/v1/sandbox-profiles/${seg(id)}/versions/${latest}`);
      if (!version.ok) return version.response;
      const egress = asJson(version.body.egressPolicy);
      draft = {
        bindings: asList(version.body.bindings).map((binding) => ({
          connectionId: str(binding.connectionId),
          kind: str(binding.kind),
          config: asJson(binding.config),
        })),
        egressDefault: str(egress.default),
        allowHosts: Array.isArray(egress.allowHosts)
          ? egress.allowHosts.map(String).join("\n")
          : "",
      };
    }
    return versionEditor(c, profile.body, draft);
  });

  router.post("/profiles/:id/versions/new", async (c) => {
    const id = c.req.param("id");
    const profile = await load(c, `/v1/sandbox-profiles/${seg(id)}`);
    if (!profile.ok) return profile.response;
    const catalogue = await loadCatalogue(c);
    if (!catalogue.ok) return catalogue.response;
    const form = c.get("form");
    const draft = readDraft(form, catalogue.value);
    const action = form.action ?? "save";
    if (action === "add") {
      const connectionId = form["add.connectionId"] ?? "";
      const connection = catalogue.value.connections.get(connectionId);
      if (connection) {
        draft.bindings.push({
          connectionId,
          kind: str(catalogue.value.targets.get(str(connection.targetKey))?.kind),
          config: {},
        });
      }
      return versionEditor(c, profile.body, draft);
    }
    if (action.startsWith("remove:")) {
      draft.bindings.splice(Number(action.slice("remove:".length)), 1);
      return versionEditor(c, profile.body, draft);
    }
    const body: Json = {
      bindings: draft.bindings.map((binding) => ({
        connectionId: binding.connectionId,
        kind: binding.kind,
        config: binding.config,
      })),
    };
    if (draft.egressDefault === "allow" || draft.egressDefault === "deny") {
      body.egressPolicy = {
        default: draft.egressDefault,
        allowHosts: draft.allowHosts
          .split(/\r?\n/)
          .map((line) => line.trim())
          .filter(Boolean),
      };
    }
    const result = await c.get("api")("POST", `/v1/sandbox-profiles/${seg(id)}/versions`, body);
    if (result.status !== 201 && result.status !== 200) {
      return versionEditor(c, profile.body, draft, apiError(result), result.status);
    }
    const version = str(asJson(result.body).version);
    return c.redirect(
      `/console/profiles/${seg(id)}/versions/${seg(version)}/plan?done=created`,
      303,
    );
  });

  router.get("/profiles/:id/versions/:v/plan", async (c) => {
    const id = c.req.param("id");
    const v = c.req.param("v");
    const [profile, plan] = await Promise.all([
      load(c, `/v1/sandbox-profiles/${seg(id)}`),
      load(c, `/v1/sandbox-profiles/${seg(id)}/versions/${seg(v)}/plan`),
    ]);
    if (!profile.ok) return profile.response;
    if (!plan.ok) return plan.response;
    return renderPage(
      c,
      `Plan of ${str(profile.body.name)} version ${v}`,
      <>
        <DoneNotice done={c.req.query("done")} />
        <p>
          <a href={`/console/profiles/${seg(id)}`}>Back to the profile</a>
        </p>
        <p>
          Digest <code>{str(plan.body.digest)}</code>
        </p>
        <PlanView plan={asJson(plan.body.plan)} />
      </>,
    );
  });

  router.get("/profiles/:id/diff", async (c) => {
    const id = c.req.param("id");
    const from = c.req.query("from") ?? "";
    const to = c.req.query("to") ?? "";
    const [profile, fromPlan, toPlan, diff] = await Promise.all([
      load(c, `/v1/sandbox-profiles/${seg(id)}`),
      load(c, `/v1/sandbox-profiles/${seg(id)}/versions/${seg(from)}/plan`),
      load(c, `/v1/sandbox-profiles/${seg(id)}/versions/${seg(to)}/plan`),
      load(c, `/v1/sandbox-profiles/${seg(id)}/versions/${seg(to)}/diff?against=${seg(from)}`),
    ]);
    for (const loaded of [profile, fromPlan, toPlan, diff]) if (!loaded.ok) return loaded.response;
    if (!profile.ok || !fromPlan.ok || !toPlan.ok || !diff.ok) return c.notFound();
    const left = planLines(asJson(fromPlan.body.plan));
    const right = planLines(asJson(toPlan.body.plan));
    const summary = asJson(diff.body.diff);
    return renderPage(
      c,
      `${str(profile.body.name)}: version ${from} → ${to}`,
      <>
        <p>
          <a href={`/console/profiles/${seg(id)}`}>Back to the profile</a>
        </p>
        <p role="status">
          {summary.identical === true
            ? "The two versions compile to the same plan."
            : `Capabilities added: ${asList(asJson(summary.capabilities).added).length}, removed: ${asList(asJson(summary.capabilities).removed).length}.${summary.egressPolicyChanged === true ? " The egress policy changed." : ""}`}
        </p>
        <div class="diff">
          <section aria-labelledby="diff-from">
            <h2 id="diff-from">Version {from}</h2>
            <DiffColumn lines={left} other={right} mark="removed" />
          </section>
          <section aria-labelledby="diff-to">
            <h2 id="diff-to">Version {to}</h2>
            <DiffColumn lines={right} other={left} mark="added" />
          </section>
        </div>
      </>,
    );
  });
}

function ProfileList(props: { c: ConsoleContext; items: Json[]; error?: ApiErrorView }) {
  return (
    <>
      <DoneNotice done={props.c.req.query("done")} />
      {props.items.length === 0 ? (
        <p>No profiles yet.</p>
      ) : (
        <ul>
          {props.items.map((profile) => (
            <li>
              <a href={`/console/profiles/${seg(str(profile.id))}`}>{str(profile.name)}</a> — latest
              version {str(profile.latestVersion)}
            </li>
          ))}
        </ul>
      )}
      <h2 id="new-profile">New profile</h2>
      <ErrorNotice error={props.error} />
      <form method="post" action="/console/profiles" class="stack" aria-labelledby="new-profile">
        <Csrf session={props.c.get("session")} />
        <div class="field">
          <label for="profile-name">Name (required)</label>
          <input type="text" id="profile-name" name="name" required />
        </div>
        <div class="field">
          <label for="profile-description">Description</label>
          <input type="text" id="profile-description" name="description" />
        </div>
        <div>
          <button type="submit">Create profile</button>
        </div>
      </form>
    </>
  );
}

interface Catalogue {
  connections: Map<string, Json>;
  targets: Map<string, Json>;
}

async function loadCatalogue(
  c: ConsoleContext,
): Promise<{ ok: true; value: Catalogue } | { ok: false; response: Response | Promise<Response> }> {
  const [connections, targets] = await Promise.all([
    load(c, "/v1/integration/connections"),
    load(c, "/v1/integration/targets"),
  ]);
  if (!connections.ok) return connections;
  if (!targets.ok) return targets;
  return {
    ok: true,
    value: {
      connections: new Map(itemsOf(connections.body).map((item) => [str(item.id), item])),
      targets: new Map(itemsOf(targets.body).map((item) => [str(item.targetKey), item])),
    },
  };
}

function bindingFormOf(catalogue: Catalogue, connectionId: string): Json {
  const connection = catalogue.connections.get(connectionId);
  const target = connection ? catalogue.targets.get(str(connection.targetKey)) : undefined;
  return asJson(target?.bindingForm);
}

function readDraft(form: PostedForm, catalogue: Catalogue): Draft {
  const count = Math.min(Number(form.rows ?? 0) || 0, 500);
  const bindings: DraftBinding[] = [];
  for (let i = 0; i < count; i++) {
    const connectionId = form[`b.${i}.connectionId`] ?? "";
    bindings.push({
      connectionId,
      kind: form[`b.${i}.kind`] ?? "",
      config: readSchemaValues(bindingFormOf(catalogue, connectionId), form, `b.${i}.config`),
    });
  }
  return {
    bindings,
    egressDefault: form["egress.default"] ?? "",
    allowHosts: form["egress.allowHosts"] ?? "",
  };
}

async function versionEditor(
  c: ConsoleContext,
  profile: Json,
  draft: Draft,
  error?: ApiErrorView,
  status?: number,
) {
  const catalogue = await loadCatalogue(c);
  if (!catalogue.ok) return catalogue.response;
  const { connections, targets } = catalogue.value;
  const id = str(profile.id);
  const issues: FormIssue[] = error?.issues ?? [];
  const session = c.get("session");
  return renderPage(
    c,
    `New version of ${str(profile.name)}`,
    <>
      <p>
        <a href={`/console/profiles/${seg(id)}`}>Back to the profile</a>
      </p>
      <ErrorNotice error={error} />
      <form
        method="post"
        action={`/console/profiles/${seg(id)}/versions/new`}
        class="stack"
        novalidate
      >
        <Csrf session={session} />
        <input type="hidden" name="rows" value={String(draft.bindings.length)} />
        {draft.bindings.map((binding, index) => {
          const connection = connections.get(binding.connectionId);
          const target = connection ? targets.get(str(connection.targetKey)) : undefined;
          const own = issues.filter(
            (issue) =>
              issue.field === `bindings.${index}` ||
              issue.field === `bindings.${index}.connectionId` ||
              issue.field === `bindings.${index}.kind`,
          );
          const legendId = `binding-${index}-legend`;
          return (
            <fieldset
              aria-labelledby={legendId}
              aria-invalid={own.length > 0 ? "true" : undefined}
              aria-describedby={own.length > 0 ? `binding-${index}-issue` : undefined}
            >
              <legend id={legendId}>
                {`Binding ${index + 1}: ${connection ? str(connection.displayName) : binding.connectionId} (${binding.kind})`}
              </legend>
              {own.length > 0 ? (
                <p class="issue" id={`binding-${index}-issue`}>
                  {own.map((issue) => issue.message).join("; ")}
                </p>
              ) : null}
              <input type="hidden" name={`b.${index}.connectionId`} value={binding.connectionId} />
              <input type="hidden" name={`b.${index}.kind`} value={binding.kind} />
              <p class="help">
                Target <code>{str(target?.targetKey ?? connection?.targetKey)}</code>
              </p>
              <SchemaFields
                schema={asJson(target?.bindingForm)}
                name={`b.${index}.config`}
                issuePath={`bindings.${index}.config`}
                values={binding.config}
                issues={issues}
              />
              <div>
                <button type="submit" name="action" value={`remove:${index}`} class="secondary">
                  {`Remove binding ${index + 1}`}
                </button>
              </div>
            </fieldset>
          );
        })}
        <fieldset>
          <legend>Add a binding</legend>
          <div class="field">
            <label for="add-connection">Connection</label>
            <select id="add-connection" name="add.connectionId">
              {[...connections.values()].map((connection) => (
                <option value={str(connection.id)}>
                  {`${str(connection.displayName)} (${str(connection.targetKey)})`}
                </option>
              ))}
            </select>
          </div>
          <div>
            <button type="submit" name="action" value="add" class="secondary">
              Add binding
            </button>
          </div>
        </fieldset>
        <fieldset>
          <legend>Egress policy</legend>
          <div class="field">
            <label for="egress-default">Hosts no route names</label>
            <select id="egress-default" name="egress.default">
              <option value="" selected={draft.egressDefault === ""}>
                Deployment default
              </option>
              <option value="deny" selected={draft.egressDefault === "deny"}>
                Deny
              </option>
              <option value="allow" selected={draft.egressDefault === "allow"}>
                Allow
              </option>
            </select>
          </div>
          <div class="field">
            <label for="egress-hosts">Also allowed hosts (one per line)</label>
            <textarea id="egress-hosts" name="egress.allowHosts">
              {draft.allowHosts}
            </textarea>
          </div>
        </fieldset>
        <div>
          <button type="submit" name="action" value="save">
            Create version
          </button>
        </div>
      </form>
    </>,
    error ? (status === 422 ? 422 : status === 409 ? 409 : 400) : 200,
  );
}

function PlanView({ plan }: { plan: Json }) {
  const routes = asList(plan.routes);
  const files = asList(plan.files);
  const mcpServers = asList(plan.mcpServers);
  const env = asList(plan.env);
  return (
    <>
      <h2>Routes</h2>
      {routes.length === 0 ? (
        <p>None.</p>
      ) : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Hosts</th>
                <th scope="col">Methods</th>
                <th scope="col">Path prefixes</th>
                <th scope="col">Auth</th>
                <th scope="col">Connection</th>
              </tr>
            </thead>
            <tbody>
              {routes.map((route) => {
                const match = asJson(route.match);
                return (
                  <tr>
                    <td>{listText(match.hosts)}</td>
                    <td>{listText(match.methods) || "any"}</td>
                    <td>{listText(match.pathPrefixes) || "/"}</td>
                    <td>{str(asJson(route.auth).type)}</td>
                    <td>
                      <code>{str(asJson(route.credential).connectionId) || "—"}</code>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <h2>Files</h2>
      {files.length === 0 ? (
        <p>None.</p>
      ) : (
        files.map((file) => (
          <details>
            <summary>
              <code>{`${str(file.root)}:${str(file.path)}`}</code>
            </summary>
            <pre>{str(file.content)}</pre>
          </details>
        ))
      )}
      <h2>MCP servers</h2>
      {mcpServers.length === 0 ? (
        <p>None.</p>
      ) : (
        <ul>
          {mcpServers.map((server) => (
            <li>
              <code>{str(server.name) || str(server.id)}</code> ({str(server.transport)})
              {server.url ? ` ${str(server.url)}` : ""}
            </li>
          ))}
        </ul>
      )}
      <h2>Environment</h2>
      {env.length === 0 ? (
        <p>None.</p>
      ) : (
        <ul>
          {env.map((variable) => (
            <li>
              <code>{`${str(variable.name)}=${str(variable.value)}`}</code>
            </li>
          ))}
        </ul>
      )}
    </>
  );
}

function listText(value: unknown): string {
  return Array.isArray(value) ? value.map(String).join(", ") : "";
}

/** One readable line per capability, file, MCP server and variable of a plan (for the comparison). */
function planLines(plan: Json): string[] {
  const lines: string[] = [];
  for (const route of asList(plan.routes)) {
    const match = asJson(route.match);
    // A read-only git route differs from a read-write one only in the queries it refuses.
    const refused = asList(match.excludeQuery).map((e) => `${str(e.name)}=${listText(e.values)}`);
    lines.push(
      `route ${listText(match.methods) || "any"} ${listText(match.hosts)}${listText(match.pathPrefixes) || "/"} auth=${str(asJson(route.auth).type)}${refused.length ? ` except ${refused.join(" ")}` : ""}`,
    );
  }
  for (const file of asList(plan.files)) lines.push(`file ${str(file.root)}:${str(file.path)}`);
  for (const server of asList(plan.mcpServers))
    lines.push(`mcp ${str(server.name) || str(server.id)}`);
  for (const variable of asList(plan.env))
    lines.push(`env ${str(variable.name)}=${str(variable.value)}`);
  const egress = asJson(plan.egressPolicy);
  if (egress.default)
    lines.push(`egress default=${str(egress.default)} allow=${listText(egress.allowHosts)}`);
  return lines;
}

function DiffColumn(props: { lines: string[]; other: string[]; mark: "added" | "removed" }) {
  const others = new Set(props.other);
  return (
    <ul class="plain">
      {props.lines.map((line) => {
        const changed = !others.has(line);
        return (
          <li class={changed ? props.mark : undefined}>
            <pre>
              {changed ? (props.mark === "added" ? "+ " : "- ") : "  "}
              {line}
            </pre>
            {changed ? <span class="skip">{` (${props.mark})`}</span> : null}
          </li>
        );
      })}
    </ul>
  );
}
