import { usageError } from "../api-client";
import {
  argAt,
  type Command,
  type CommandContext,
  positiveInteger,
  requiredOption,
  stringOption,
} from "../context";
import { shortTime } from "../output";
import { profilePath, resolveProfileId } from "../profile-ref";
import { readJsonFile } from "./json-file";

interface Profile {
  id: string;
  name: string;
  description: string | null;
  latestVersion: number;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
}

interface VersionSummary {
  id: string;
  version: number;
  planDigest: string | null;
  bindingCount: number;
  egressPolicy: { default: string; allowHosts?: string[] } | null;
  createdBy: string;
  createdAt: string;
}

interface Version extends VersionSummary {
  bindings: { id: string; connectionId: string; kind: string; config: Record<string, unknown> }[];
}

function showProfile(context: CommandContext, profile: Profile) {
  context.out.result(profile, () =>
    context.out.fields([
      ["id", profile.id],
      ["name", profile.name],
      ["description", profile.description ?? undefined],
      ["latest version", profile.latestVersion],
      ["created", `${shortTime(profile.createdAt)} by ${profile.createdBy}`],
    ]),
  );
}

function showVersion(context: CommandContext, version: Version) {
  context.out.result(version, () => {
    context.out.fields([
      ["id", version.id],
      ["version", version.version],
      ["plan digest", version.planDigest],
      ["egress", version.egressPolicy ? describeEgress(version.egressPolicy) : null],
      ["created", `${shortTime(version.createdAt)} by ${version.createdBy}`],
    ]);
    context.out.line();
    context.out.table(
      ["binding", "kind", "connection", "config"],
      version.bindings.map((b) => [b.id, b.kind, b.connectionId, JSON.stringify(b.config)]),
    );
  });
}

function describeEgress(policy: { default: string; allowHosts?: string[] }): string {
  return `default ${policy.default}${policy.allowHosts?.length ? `, allow ${policy.allowHosts.join(", ")}` : ""}`;
}

async function versionNumber(context: CommandContext, index: number): Promise<number> {
  return positiveInteger(argAt(context, index), "version") as number;
}

export const profileCommands: Command[] = [
  {
    name: "profiles list",
    summary: "list sandbox profiles",
    async run(context) {
      const page = await (await context.api()).request<{ items: Profile[] }>(
        "GET",
        "/v1/sandbox-profiles",
      );
      context.out.result(page, () =>
        context.out.table(
          ["id", "name", "latest", "updated"],
          page.items.map((p) => [p.id, p.name, p.latestVersion, shortTime(p.updatedAt)]),
          [2],
        ),
      );
      return undefined;
    },
  },
  {
    name: "profiles create",
    summary: "create a sandbox profile (its versions hold the bindings)",
    args: ["name"],
    options: { description: { type: "string" } },
    async run(context) {
      const description = stringOption(context.options, "description");
      showProfile(
        context,
        await (await context.api()).request<Profile>("POST", "/v1/sandbox-profiles", {
          body: { name: argAt(context, 0), ...(description !== undefined ? { description } : {}) },
        }),
      );
      return undefined;
    },
  },
  {
    name: "profiles show",
    summary: "show a sandbox profile (by id or name)",
    args: ["profile"],
    async run(context) {
      const api = await context.api();
      showProfile(
        context,
        await api.request<Profile>(
          "GET",
          profilePath(await resolveProfileId(api, argAt(context, 0))),
        ),
      );
      return undefined;
    },
  },
  {
    name: "profiles delete",
    summary: "delete a sandbox profile (admin; refused while sessions of it are active)",
    args: ["profile"],
    async run(context) {
      const api = await context.api();
      const id = await resolveProfileId(api, argAt(context, 0));
      await api.request("DELETE", profilePath(id));
      context.out.result({ id, deleted: true }, () => context.out.line(`deleted ${id}`));
      return undefined;
    },
  },
  {
    name: "versions create",
    summary: "create the next version of a profile from a JSON file of bindings",
    args: ["profile"],
    options: { file: { type: "string" } },
    help: `--file FILE holds {"bindings": [{"connectionId": "conn_…", "kind": "connector", "config": {…}}, …],
"egressPolicy": {"default": "deny", "allowHosts": [...]}} (egressPolicy optional), or just the bindings array.
The version is compiled at once; a binding the target refuses fails with its field-level issues.`,
    async run(context) {
      const file = requiredOption(context.options, "file");
      const content = await readJsonFile(context, file);
      const body = Array.isArray(content) ? { bindings: content } : content;
      if (typeof body !== "object" || body === null || !("bindings" in body))
        throw usageError(`${file} must hold {"bindings": [...]} or an array of bindings`);
      const api = await context.api();
      const id = await resolveProfileId(api, argAt(context, 0));
      showVersion(
        context,
        await api.request<Version>("POST", `${profilePath(id)}/versions`, { body }),
      );
      return undefined;
    },
  },
  {
    name: "versions list",
    summary: "list a profile's versions",
    args: ["profile"],
    async run(context) {
      const api = await context.api();
      const id = await resolveProfileId(api, argAt(context, 0));
      const page = await api.request<{ items: VersionSummary[] }>(
        "GET",
        `${profilePath(id)}/versions`,
      );
      context.out.result(page, () =>
        context.out.table(
          ["version", "bindings", "plan digest", "egress", "created", "by"],
          page.items.map((v) => [
            v.version,
            v.bindingCount,
            v.planDigest ? v.planDigest.slice(0, 19) : null,
            v.egressPolicy ? describeEgress(v.egressPolicy) : null,
            shortTime(v.createdAt),
            v.createdBy,
          ]),
          [0, 1],
        ),
      );
      return undefined;
    },
  },
  {
    name: "versions show",
    summary: "show one version of a profile with its bindings",
    args: ["profile", "version"],
    async run(context) {
      const api = await context.api();
      const id = await resolveProfileId(api, argAt(context, 0));
      const version = await versionNumber(context, 1);
      showVersion(
        context,
        await api.request<Version>("GET", `${profilePath(id)}/versions/${version}`),
      );
      return undefined;
    },
  },
  {
    name: "plan show",
    summary:
      "compile a profile version and show its runtime plan (routes, files, env, MCP servers)",
    args: ["profile", "version"],
    async run(context) {
      const api = await context.api();
      const id = await resolveProfileId(api, argAt(context, 0));
      const version = await versionNumber(context, 1);
      const compiled = await api.request<CompiledPlan>(
        "GET",
        `${profilePath(id)}/versions/${version}/plan`,
      );
      context.out.result(compiled, () => describePlan(context, compiled));
      return undefined;
    },
  },
  {
    name: "plan diff",
    summary: "what changes in capabilities from one version of a profile to another",
    args: ["profile", "from", "to"],
    async run(context) {
      const api = await context.api();
      const id = await resolveProfileId(api, argAt(context, 0));
      const from = await versionNumber(context, 1);
      const to = await versionNumber(context, 2);
      const diff = await api.request<PlanDiff>("GET", `${profilePath(id)}/versions/${to}/diff`, {
        query: { against: from },
      });
      context.out.result(diff, () => describeDiff(context, diff));
      return undefined;
    },
  },
];

interface CompiledPlan {
  digest: string;
  plan: {
    routes: {
      id: string;
      match: { hosts: string[]; methods?: string[]; pathPrefixes?: string[] };
      upstream: { baseUrl: string };
    }[];
    files: { path: string; root: string }[];
    env: { name: string }[];
    mcpServers: unknown;
    egressPolicy?: unknown;
  };
}

function describePlan(context: CommandContext, compiled: CompiledPlan) {
  const { plan } = compiled;
  const mcpCount = Array.isArray(plan.mcpServers)
    ? plan.mcpServers.length
    : typeof plan.mcpServers === "object" && plan.mcpServers !== null
      ? Object.keys(plan.mcpServers).length
      : 0;
  context.out.fields([
    ["digest", compiled.digest],
    ["routes", plan.routes.length],
    ["files", plan.files.map((f) => `${f.root}/${f.path}`).join(", ")],
    ["env", plan.env.map((e) => e.name).join(", ")],
    ["mcp servers", mcpCount],
  ]);
  context.out.line();
  context.out.table(
    ["route", "hosts", "methods", "paths", "upstream"],
    plan.routes.map((r) => [
      r.id,
      r.match.hosts.join(","),
      r.match.methods?.join(",") ?? "*",
      r.match.pathPrefixes?.join(",") ?? "*",
      r.upstream.baseUrl,
    ]),
  );
  context.out.line("\n(--json prints the whole plan)");
}

interface PlanDiff {
  from: { version: number; digest: string };
  to: { version: number; digest: string };
  diff: {
    identical: boolean;
    capabilities: unknown;
    mcpServers: unknown;
    files: unknown;
    env: unknown;
    egressPolicyChanged: boolean;
  };
}

function describeDiff(context: CommandContext, result: PlanDiff) {
  context.out.line(`version ${result.from.version} → ${result.to.version}`);
  if (result.diff.identical) {
    context.out.line("identical plans");
    return;
  }
  const sections = ["capabilities", "mcpServers", "files", "env"] as const;
  for (const section of sections) {
    const lines = changeLines(result.diff[section]);
    if (lines.length === 0) continue;
    context.out.line(`\n${section}:`);
    for (const line of lines) context.out.line(`  ${line}`);
  }
  if (result.diff.egressPolicyChanged) context.out.line("\negress policy changed");
}

/**
 * Each diff section is `{ added: [...], removed: [...], changed?: [...] }` (SPEC §4.4); printed as
 * `+`/`-`/`~` lines, each item as compact JSON when it is not a plain string.
 */
function changeLines(section: unknown): string[] {
  if (typeof section !== "object" || section === null) return [];
  const marks: Record<string, string> = { added: "+", removed: "-", changed: "~" };
  const lines: string[] = [];
  for (const [key, items] of Object.entries(section)) {
    if (!Array.isArray(items)) continue;
    const mark = marks[key] ?? `${key}:`;
    for (const item of items)
      lines.push(`${mark} ${typeof item === "string" ? item : JSON.stringify(item)}`);
  }
  return lines;
}
