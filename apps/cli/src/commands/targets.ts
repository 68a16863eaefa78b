import { usageError } from "../api-client";
import { argAt, type Command, type CommandContext, requiredOption, stringOption } from "../context";
import { shortTime } from "../output";
import { readSecrets } from "../secret-input";
import { applySettings, readJsonFile } from "./json-file";

/** `OperatorTarget` of the API. */
interface OperatorTarget {
  targetKey: string;
  variantId: string;
  kind: string;
  enabled: boolean;
  source: string;
  displayName: string | null;
  description: string | null;
  config: Record<string, unknown>;
  configValid: boolean;
  configIssues: { field: string; code: string; message: string }[];
  secretFields: string[];
  updatedAt: string;
}

/** `Target` (the organization's view of the catalogue). */
interface CatalogueTarget {
  targetKey: string;
  displayName: string;
  kind: string;
  variantId: string;
  connectionMethods: { id: string; label: string; kind: string; secretFields: string[] }[];
}

const path = (key: string) => `/v1/operator/targets/${encodeURIComponent(key)}`;

function showTarget(context: CommandContext, target: OperatorTarget) {
  context.out.result(target, () => {
    context.out.fields([
      ["target", target.targetKey],
      ["name", target.displayName],
      ["variant", target.variantId],
      ["kind", target.kind],
      ["enabled", target.enabled],
      ["source", target.source],
      ["config", JSON.stringify(target.config)],
      ["config valid", target.configValid],
      ["secrets set", target.secretFields.join(", ")],
      ["updated", shortTime(target.updatedAt)],
    ]);
    for (const issue of target.configIssues)
      context.out.line(`  issue: ${issue.field}: ${issue.message}`);
  });
}

export const targetCommands: Command[] = [
  {
    name: "targets list",
    summary: "list the deployment's targets (operator)",
    async run(context) {
      const page = await (await context.api()).request<{ items: OperatorTarget[] }>(
        "GET",
        "/v1/operator/targets",
      );
      context.out.result(page, () =>
        context.out.table(
          ["target", "variant", "kind", "enabled", "config valid", "source"],
          page.items.map((t) => [
            t.targetKey,
            t.variantId,
            t.kind,
            t.enabled,
            t.configValid,
            t.source,
          ]),
        ),
      );
      return undefined;
    },
  },
  {
    name: "targets create",
    summary: "add a target of a variant (e.g. an http-api for an internal API) (operator)",
    args: ["targetKey"],
    options: {
      variant: { type: "string" },
      set: { type: "string", multiple: true },
      "config-file": { type: "string" },
      "display-name": { type: "string" },
      description: { type: "string" },
      disabled: { type: "boolean" },
      secret: { type: "string", multiple: true },
    },
    help: `--variant ID (http-api, github-enterprise-server, …); config and secrets as for targets configure:
  keyway targets create demo-api --variant http-api --set baseUrl=http://127.0.0.1:8090/v1`,
    async run(context) {
      const variantId = requiredOption(context.options, "variant");
      const secretFields = (context.options.secret as string[] | undefined) ?? [];
      const secrets = secretFields.length
        ? await readSecrets(context.deps.stdin, secretFields)
        : undefined;
      const config = applySettings(
        await configFromFile(context),
        (context.options.set as string[] | undefined) ?? [],
      );
      const displayName = stringOption(context.options, "display-name");
      const description = stringOption(context.options, "description");
      showTarget(
        context,
        await (await context.api()).request<OperatorTarget>("POST", "/v1/operator/targets", {
          body: {
            targetKey: argAt(context, 0),
            variantId,
            config,
            enabled: context.options.disabled !== true,
            ...(displayName !== undefined ? { displayName } : {}),
            ...(description !== undefined ? { description } : {}),
            ...(secrets ? { secrets } : {}),
          },
        }),
      );
      return undefined;
    },
  },
  {
    name: "targets show",
    summary: "show one target with its config and which secrets are set (operator)",
    args: ["targetKey"],
    async run(context) {
      showTarget(
        context,
        await (await context.api()).request<OperatorTarget>("GET", path(argAt(context, 0))),
      );
      return undefined;
    },
  },
  {
    name: "targets enable",
    summary: "let organizations connect to and bind a target (operator)",
    args: ["targetKey"],
    async run(context) {
      showTarget(
        context,
        await (await context.api()).request<OperatorTarget>(
          "POST",
          `${path(argAt(context, 0))}/enable`,
        ),
      );
      return undefined;
    },
  },
  {
    name: "targets disable",
    summary: "stop new connections and bindings to a target (operator)",
    args: ["targetKey"],
    async run(context) {
      showTarget(
        context,
        await (await context.api()).request<OperatorTarget>(
          "POST",
          `${path(argAt(context, 0))}/disable`,
        ),
      );
      return undefined;
    },
  },
  {
    name: "targets configure",
    summary: "change a target's config, name or description, and set its secrets (operator)",
    args: ["targetKey"],
    options: {
      set: { type: "string", multiple: true },
      "config-file": { type: "string" },
      "display-name": { type: "string" },
      description: { type: "string" },
      secret: { type: "string", multiple: true },
    },
    help: `--set key=value changes one config field (JSON values are parsed: --set port=8443);
--config-file FILE replaces the whole config with the JSON object in FILE.
--secret FIELD (repeatable) names a secret field to set (e.g. clientSecret); the values come from
hidden prompts, or from standard input: the value itself for one field, a JSON object
{"field": "value"} for several. Never on the command line. The fields given replace all secrets.`,
    async run(context) {
      const api = await context.api();
      const key = argAt(context, 0);
      const sets = (context.options.set as string[] | undefined) ?? [];
      const configFile = stringOption(context.options, "config-file");
      const displayName = stringOption(context.options, "display-name");
      const description = stringOption(context.options, "description");
      const secretFields = (context.options.secret as string[] | undefined) ?? [];
      const wantsSecrets = secretFields.length > 0;
      if (
        sets.length === 0 &&
        !configFile &&
        displayName === undefined &&
        description === undefined &&
        !wantsSecrets
      )
        throw usageError(
          "nothing to change: give --set, --config-file, --display-name, --description or --secret",
        );
      let target = await api.request<OperatorTarget>("GET", path(key));
      // Secrets are read before anything changes, so a cancelled prompt changes nothing.
      const secrets = wantsSecrets
        ? await readSecrets(context.deps.stdin, secretFields)
        : undefined;
      let config = configFile ? await configFromFile(context) : undefined;
      if (sets.length > 0) config = applySettings(config ?? target.config, sets);
      if (config !== undefined || displayName !== undefined || description !== undefined) {
        target = await api.request<OperatorTarget>("PATCH", path(key), {
          body: {
            ...(config !== undefined ? { config } : {}),
            ...(displayName !== undefined ? { displayName } : {}),
            ...(description !== undefined ? { description } : {}),
          },
        });
      }
      if (secrets !== undefined) {
        await api.request("PUT", `${path(key)}/secrets`, { body: { secrets } });
        target = await api.request<OperatorTarget>("GET", path(key));
      }
      showTarget(context, target);
      return undefined;
    },
  },
  {
    name: "targets catalog",
    summary: "list the targets an organization can connect to, with their connection methods",
    args: ["targetKey?"],
    async run(context) {
      const api = await context.api();
      const key = context.args[0];
      const result =
        key === undefined
          ? await api.request<{ items: CatalogueTarget[] }>("GET", "/v1/integration/targets")
          : await api.request<CatalogueTarget>(
              "GET",
              `/v1/integration/targets/${encodeURIComponent(key)}`,
            );
      const items = "items" in result ? result.items : [result];
      context.out.result(result, () =>
        context.out.table(
          ["target", "name", "kind", "methods (id: secret fields)"],
          items.map((t) => [
            t.targetKey,
            t.displayName,
            t.kind,
            t.connectionMethods
              .map((m) => `${m.id}${m.secretFields.length ? `: ${m.secretFields.join(",")}` : ""}`)
              .join("; "),
          ]),
        ),
      );
      return undefined;
    },
  },
];

/** The JSON object in `--config-file`, or an empty config without one. */
async function configFromFile(context: CommandContext): Promise<Record<string, unknown>> {
  const file = stringOption(context.options, "config-file");
  if (file === undefined) return {};
  const parsed = await readJsonFile(context, file);
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw usageError(`${file} must hold a JSON object`);
  return parsed as Record<string, unknown>;
}
