import { spawn } from "node:child_process";
import { CliError, usageError } from "../api-client";
import {
  argAt,
  type Command,
  type CommandContext,
  positiveInteger,
  requiredOption,
  stringOption,
} from "../context";
import { EXIT } from "../exit-codes";
import { shortTime } from "../output";
import { readSecrets } from "../secret-input";
import { parseJsonObject } from "./json-file";

/** `Connection` of the API. */
interface Connection {
  id: string;
  targetKey: string;
  methodId: string;
  methodKind: string;
  displayName: string;
  status: string;
  config: Record<string, unknown>;
  externalSubjectId: string | null;
  credentialVersion: number;
  credentialExpiresAt: string | null;
  lastError: string | null;
  secretFields: string[];
  createdAt: string;
  updatedAt: string;
}

interface CatalogueTarget {
  connectionMethods: { id: string; kind: string; secretFields: string[] }[];
}

const path = (id: string) => `/v1/integration/connections/${encodeURIComponent(id)}`;

function showConnection(context: CommandContext, connection: Connection) {
  context.out.result(connection, () =>
    context.out.fields([
      ["id", connection.id],
      ["name", connection.displayName],
      ["target", connection.targetKey],
      ["method", `${connection.methodId} (${connection.methodKind})`],
      ["status", connection.status],
      ["last error", connection.lastError ?? undefined],
      ["config", JSON.stringify(connection.config)],
      ["secrets", connection.secretFields.join(", ")],
      ["credential", `version ${connection.credentialVersion}`],
      ["expires", shortTime(connection.credentialExpiresAt) ?? undefined],
      ["subject", connection.externalSubjectId ?? undefined],
      ["updated", shortTime(connection.updatedAt)],
    ]),
  );
}

/** The secret fields the target's connection method takes, from the organization's catalogue. */
async function methodSecretFields(
  context: CommandContext,
  targetKey: string,
  methodId: string,
): Promise<string[]> {
  const target = await (await context.api()).request<CatalogueTarget>(
    "GET",
    `/v1/integration/targets/${encodeURIComponent(targetKey)}`,
  );
  const method = target.connectionMethods.find((m) => m.id === methodId);
  if (!method)
    throw usageError(
      `${targetKey} has no connection method "${methodId}" (it has ${target.connectionMethods.map((m) => m.id).join(", ")})`,
    );
  return method.secretFields;
}

export const connectionCommands: Command[] = [
  {
    name: "connections list",
    summary: "list the organization's connections",
    options: { target: { type: "string" }, status: { type: "string" } },
    async run(context) {
      const page = await (await context.api()).request<{ items: Connection[] }>(
        "GET",
        "/v1/integration/connections",
        {
          query: {
            targetKey: stringOption(context.options, "target"),
            status: stringOption(context.options, "status"),
          },
        },
      );
      context.out.result(page, () =>
        context.out.table(
          ["id", "name", "target", "method", "status", "updated"],
          page.items.map((c) => [
            c.id,
            c.displayName,
            c.targetKey,
            c.methodId,
            c.status,
            shortTime(c.updatedAt),
          ]),
        ),
      );
      return undefined;
    },
  },
  {
    name: "connections show",
    summary: "show one connection (never its secrets)",
    args: ["id"],
    async run(context) {
      showConnection(
        context,
        await (await context.api()).request<Connection>("GET", path(argAt(context, 0))),
      );
      return undefined;
    },
  },
  {
    name: "connections create",
    summary:
      "connect with an API key (or another static secret) read from a prompt or standard input",
    options: {
      target: { type: "string" },
      method: { type: "string" },
      name: { type: "string" },
      config: { type: "string" },
    },
    help: `--target KEY --method ID (see targets catalog) --name NAME [--config JSON].
The secret fields of the method are asked with hidden prompts, or read from standard input: the
value itself for one field, a JSON object {"field": "value"} for several. Never on the command line:
  keyway connections create --target openai --method api-key --name ci < key.txt`,
    async run(context) {
      const targetKey = requiredOption(context.options, "target");
      const methodId = requiredOption(context.options, "method");
      const displayName = requiredOption(context.options, "name");
      const configText = stringOption(context.options, "config");
      const config = configText === undefined ? undefined : parseJsonObject(configText, "--config");
      const fields = await methodSecretFields(context, targetKey, methodId);
      const secrets = await readSecrets(context.deps.stdin, fields);
      const created = await (await context.api()).request<Connection>(
        "POST",
        "/v1/integration/connections",
        {
          body: { targetKey, methodId, displayName, secrets, ...(config ? { config } : {}) },
        },
      );
      showConnection(context, created);
      return undefined;
    },
  },
  {
    name: "connections test",
    summary: "ask the provider whether the connection's credential works (exit 1 if it does not)",
    args: ["id"],
    async run(context) {
      const result = await (await context.api()).request<{ ok: boolean | null; message: string }>(
        "POST",
        `${path(argAt(context, 0))}/test`,
      );
      context.out.result(result, () =>
        context.out.line(
          `${result.ok === true ? "ok" : result.ok === false ? "FAILED" : "not testable"}: ${result.message}`,
        ),
      );
      return result.ok === false ? EXIT.api : EXIT.ok;
    },
  },
  {
    name: "connections rotate",
    summary:
      "replace the connection's secret (new credential version), read from a prompt or standard input",
    args: ["id"],
    async run(context) {
      const api = await context.api();
      const id = argAt(context, 0);
      const connection = await api.request<Connection>("GET", path(id));
      const fields = await methodSecretFields(context, connection.targetKey, connection.methodId);
      const secrets = await readSecrets(context.deps.stdin, fields);
      showConnection(
        context,
        await api.request<Connection>("POST", `${path(id)}/secret`, { body: { secrets } }),
      );
      return undefined;
    },
  },
  {
    name: "connections delete",
    summary: "delete a connection (refused while a profile version binds it)",
    args: ["id"],
    async run(context) {
      const id = argAt(context, 0);
      await (await context.api()).request("DELETE", path(id));
      context.out.result({ id, deleted: true }, () => context.out.line(`deleted ${id}`));
      return undefined;
    },
  },
  {
    name: "connect oauth",
    summary:
      "connect with OAuth2: print (or --open) the authorization URL and wait for the connection",
    options: {
      target: { type: "string" },
      method: { type: "string" },
      name: { type: "string" },
      scope: { type: "string", multiple: true },
      open: { type: "boolean" },
      timeout: { type: "string" },
    },
    help: `--target KEY --method ID --name NAME [--scope S]... [--open] [--timeout SECONDS (default 600)].
Calls POST /v1/integration/connections/oauth2/start, prints the URL to open in a browser, then waits
until a connection of the target becomes active after the start (a new one, or a reconnected one).`,
    async run(context) {
      const targetKey = requiredOption(context.options, "target");
      const scopes = context.options.scope as string[] | undefined;
      return startAndWait(context, {
        route: "/v1/integration/connections/oauth2/start",
        urlField: "authorizationUrl",
        targetKey,
        body: {
          targetKey,
          methodId: requiredOption(context.options, "method"),
          displayName: requiredOption(context.options, "name"),
          ...(scopes?.length ? { scopes } : {}),
        },
      });
    },
  },
  {
    name: "connect github-app",
    summary:
      "install the GitHub App: print (or --open) the install URL and wait for the connection",
    options: {
      target: { type: "string" },
      method: { type: "string" },
      name: { type: "string" },
      open: { type: "boolean" },
      timeout: { type: "string" },
    },
    help: `--target KEY --name NAME [--method ID] [--open] [--timeout SECONDS (default 600)].
Calls POST /v1/integration/connections/github-app/start and waits as connect oauth does. Installing
(or configuring) an installation this organization already has connected ends with that connection.`,
    async run(context) {
      const targetKey = requiredOption(context.options, "target");
      const methodId = stringOption(context.options, "method");
      return startAndWait(context, {
        route: "/v1/integration/connections/github-app/start",
        urlField: "installUrl",
        targetKey,
        body: {
          targetKey,
          displayName: requiredOption(context.options, "name"),
          ...(methodId ? { methodId } : {}),
        },
      });
    },
  },
];

const POLL_INTERVAL_MS = 2_000;

/**
 * Starts a browser flow and waits for its result: the flow ends in the browser (the provider
 * redirects to the control plane's callback), so the CLI learns of it by polling the target's
 * connections for one that is active and new or changed since the start. Compared with a snapshot
 * taken before the start, not by timestamps: the client's clock need not agree with the server's.
 */
async function startAndWait(
  context: CommandContext,
  flow: {
    route: string;
    /** The field of the start route's answer that holds the URL for the browser. */
    urlField: "authorizationUrl" | "installUrl";
    targetKey: string;
    body: Record<string, unknown>;
  },
): Promise<number> {
  const timeoutSeconds =
    positiveInteger(stringOption(context.options, "timeout"), "--timeout") ?? 600;
  const api = await context.api();
  const list = async () =>
    (
      await api.request<{ items: Connection[] }>("GET", "/v1/integration/connections", {
        query: { targetKey: flow.targetKey },
      })
    ).items;
  const before = new Map((await list()).map((c) => [c.id, c.updatedAt]));
  const started = await api.request<Record<string, unknown>>("POST", flow.route, {
    body: flow.body,
  });
  const url = started[flow.urlField];
  if (typeof url !== "string")
    throw new CliError("bad_response", `${flow.route} returned no ${flow.urlField}`, EXIT.api);
  const { deps } = context;
  // The URL goes to stderr so that stdout stays the result (the connection, or its JSON).
  deps.stderr(`Open this URL in a browser to continue:\n\n  ${url}\n\n`);
  if (context.options.open === true) {
    const opened = await (deps.openUrl ?? openInBrowser)(url);
    if (!opened) deps.stderr("(no browser opener found; open the URL yourself)\n");
  }
  deps.stderr("Waiting for the connection…\n");
  const deadline = deps.clock.now().getTime() + timeoutSeconds * 1000;
  const sleep =
    deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  for (;;) {
    const done = (await list()).find(
      (c) => c.status === "active" && before.get(c.id) !== c.updatedAt,
    );
    if (done) {
      showConnection(context, done);
      return EXIT.ok;
    }
    if (deps.clock.now().getTime() >= deadline)
      throw new CliError(
        "timeout",
        `no active ${flow.targetKey} connection after ${timeoutSeconds}s`,
        EXIT.timeout,
      );
    await sleep(POLL_INTERVAL_MS);
  }
}

/** `xdg-open` (Linux) or `open` (macOS); false when neither can be started. */
function openInBrowser(url: string): Promise<boolean> {
  const opener = process.platform === "darwin" ? "open" : "xdg-open";
  return new Promise((resolve) => {
    const child = spawn(opener, [url], { stdio: "ignore", detached: true });
    child.once("error", () => resolve(false));
    child.once("spawn", () => {
      child.unref();
      resolve(true);
    });
  });
}
