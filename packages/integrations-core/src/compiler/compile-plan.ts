import { canonicalDigest, compareCodePoints } from "../canonical-json";
import type {
  AnyIntegrationDefinition,
  CompileBindingOutput,
  RuntimeFileDraft,
} from "../definition";
import {
  type AgentRuntime,
  agentRuntimeSchema,
  type CompiledRuntimePlan,
  compiledPlanSchema,
  type EgressPolicy,
  type EgressRoute,
  type McpServer,
  mcpServerSchema,
  PLAN_SCHEMA_VERSION,
  type PlanEnv,
  type PlanFile,
  type PlanProcess,
  planFileSchema,
  planProcessSchema,
  routeSchema,
  type WorkspaceSource,
  workspaceSourceSchema,
} from "../plan/schema";
import type { IntegrationRegistry } from "../registry";
import {
  type BindingInput,
  type BindingLookups,
  type CheckedBinding,
  type ConnectionInput,
  checkBinding,
  type TargetInput,
  zodIssues,
} from "./check-binding";
import { type CompileErrorDetail, compileError, PlanCompileError } from "./compile-error";
import { applyMcpServers, serializeRuntimeFile } from "./mcp-pass";
import { findRouteConflicts } from "./route-conflicts";

export interface CompileInput {
  profileVersionId: string;
  bindings: readonly BindingInput[];
  connections: readonly ConnectionInput[];
  targets: readonly TargetInput[];
  registry: IntegrationRegistry;
  egressPolicy?: EgressPolicy;
}

export type CompileResult =
  | { ok: true; plan: CompiledRuntimePlan; digest: string }
  | { ok: false; errors: CompileErrorDetail[] };

interface CompiledBinding {
  checked: CheckedBinding;
  output: CompileBindingOutput;
}

const byId = <T extends { id: string }>(a: T, b: T) => compareCodePoints(a.id, b.id);

/**
 * Compiles a profile version's bindings into a runtime plan (SPEC §4.2). Pure and synchronous:
 * the same input, in any order, gives a byte-identical plan and digest. All errors found are
 * returned together, each with a stable code and the bindings involved.
 */
export function compilePlan(input: CompileInput): CompileResult {
  const lookups: BindingLookups = {
    registry: input.registry,
    connections: new Map(input.connections.map((c) => [c.id, c])),
    targets: new Map(input.targets.map((t) => [t.id, t])),
    parsedTargets: new Map(),
  };
  const errors: CompileErrorDetail[] = [];
  const bindings = [...input.bindings].sort(byId);

  const compiled: CompiledBinding[] = [];
  for (let i = 0; i < bindings.length; i++) {
    const binding = bindings[i]!;
    if (i > 0 && bindings[i - 1]!.id === binding.id) {
      errors.push(
        compileError("duplicate_binding", [binding.id], `binding ${binding.id} is repeated`),
      );
      continue;
    }
    const checked = checkBinding(binding, lookups);
    if (!checked.ok) {
      errors.push(...checked.errors);
      continue;
    }
    try {
      compiled.push({
        checked: checked.checked,
        output: checked.checked.definition.compileBinding(checked.checked.context),
      });
    } catch (error) {
      errors.push(
        compileError(
          "invalid_compile_output",
          [binding.id],
          `definition ${checked.checked.definition.variantId} failed to compile binding ${binding.id}: ${
            error instanceof Error ? error.message : String(error)
          }`,
        ),
      );
    }
  }
  if (errors.length > 0) return { ok: false, errors };

  const assembled = assemble(input.profileVersionId, compiled, errors);
  if (errors.length > 0 || !assembled) return { ok: false, errors };
  if (input.egressPolicy) {
    assembled.egressPolicy = {
      default: input.egressPolicy.default,
      allowHosts: [...new Set(input.egressPolicy.allowHosts)].sort(compareCodePoints),
    };
  }

  const parsed = compiledPlanSchema.safeParse(assembled);
  if (!parsed.success) {
    return {
      ok: false,
      errors: [
        compileError(
          "invalid_compile_output",
          [],
          "compiled plan failed its schema",
          zodIssues(parsed.error),
        ),
      ],
    };
  }
  return { ok: true, plan: parsed.data, digest: planDigest(parsed.data) };
}

export function compilePlanOrThrow(input: CompileInput): {
  plan: CompiledRuntimePlan;
  digest: string;
} {
  const result = compilePlan(input);
  if (!result.ok) throw new PlanCompileError(result.errors);
  return { plan: result.plan, digest: result.digest };
}

/** The plan's content address: SHA-256 (hex) of its canonical JSON. */
export function planDigest(plan: CompiledRuntimePlan): string {
  return canonicalDigest(plan);
}

function assemble(
  profileVersionId: string,
  compiled: readonly CompiledBinding[],
  errors: CompileErrorDetail[],
): CompiledRuntimePlan | undefined {
  const routes: EgressRoute[] = [];
  const files: PlanFile[] = [];
  const env: PlanEnv[] = [];
  const processes: PlanProcess[] = [];
  const workspaceSources: WorkspaceSource[] = [];
  const mcpServers: McpServer[] = [];
  const agentRuntimes: AgentRuntime[] = [];

  // Runtime files stay structured until the MCP pass has written servers into agent configs.
  const pendingFiles: { bindingId: string; clientId: string; draft: RuntimeFileDraft }[] = [];
  const clientOwner = new Map<string, string>();
  const envOwner = new Map<string, PlanEnv>();

  const invalid = (bindingId: string, what: string, issues: ReturnType<typeof zodIssues>) =>
    errors.push(
      compileError(
        "invalid_compile_output",
        [bindingId],
        `binding ${bindingId} produced an invalid ${what}`,
        issues,
      ),
    );

  for (const { checked, output } of compiled) {
    const bindingId = checked.binding.id;
    const connectionId = checked.context.connection.id;

    for (const [n, draft] of (output.routes ?? []).entries()) {
      const candidate = {
        id: `${bindingId}.route.${n}`,
        bindingId,
        match: draft.match,
        upstream: draft.upstream,
        auth: draft.auth,
        ...(draft.credential ? { credential: { connectionId, ...draft.credential } } : {}),
        ...(draft.mcp ? { mcp: draft.mcp } : {}),
      };
      const parsed = routeSchema.safeParse(candidate);
      if (parsed.success) routes.push(normalizeRoute(parsed.data));
      else invalid(bindingId, "route", zodIssues(parsed.error, `routes.${n}`));
    }

    for (const client of output.runtimeClients ?? []) {
      const owner = clientOwner.get(client.clientId);
      if (owner !== undefined) {
        errors.push(
          compileError(
            "runtime_client_conflict",
            [owner, bindingId],
            `bindings ${owner} and ${bindingId} both configure runtime client ${client.clientId}`,
          ),
        );
        continue;
      }
      clientOwner.set(client.clientId, bindingId);
      for (const draft of client.files ?? [])
        pendingFiles.push({ bindingId, clientId: client.clientId, draft });
      for (const name of Object.keys(client.env ?? {}).sort(compareCodePoints)) {
        const entry: PlanEnv = { name, value: client.env![name]!, bindingId };
        const previous = envOwner.get(name);
        if (previous && previous.value !== entry.value) {
          errors.push(
            compileError(
              "env_conflict",
              [previous.bindingId, bindingId],
              `bindings ${previous.bindingId} and ${bindingId} set ${name} to different values`,
            ),
          );
        } else if (!previous) {
          envOwner.set(name, entry);
          env.push(entry);
        }
      }
      for (const draft of client.processes ?? []) {
        const parsed = planProcessSchema.safeParse({
          id: `${bindingId}.process.${draft.key}`,
          bindingId,
          clientId: client.clientId,
          command: draft.command,
          env: draft.env ?? {},
        });
        if (parsed.success) processes.push(parsed.data);
        else invalid(bindingId, "process", zodIssues(parsed.error));
      }
    }

    for (const [n, draft] of (output.workspaceSources ?? []).entries()) {
      const parsed = workspaceSourceSchema.safeParse({
        id: `${bindingId}.source.${n}`,
        bindingId,
        ...draft,
      });
      if (parsed.success) workspaceSources.push(parsed.data);
      else invalid(bindingId, "workspace source", zodIssues(parsed.error));
    }
    for (const draft of output.mcpServers ?? []) {
      const parsed = mcpServerSchema.safeParse({ ...draft, bindingId });
      if (parsed.success) mcpServers.push(parsed.data);
      else invalid(bindingId, "MCP server", zodIssues(parsed.error));
    }
    for (const draft of output.agentRuntimes ?? []) {
      const parsed = agentRuntimeSchema.safeParse({
        id: `${bindingId}.runtime.${draft.clientId}`,
        bindingId,
        ...draft,
      });
      if (parsed.success) agentRuntimes.push(parsed.data);
      else invalid(bindingId, "agent runtime", zodIssues(parsed.error));
    }
  }

  for (const conflict of findRouteConflicts(routes)) {
    errors.push(
      compileError(
        "route_conflict",
        conflict.a.bindingId === conflict.b.bindingId
          ? [conflict.a.bindingId]
          : [conflict.a.bindingId, conflict.b.bindingId],
        `routes ${conflict.a.id} and ${conflict.b.id} can match the same request on ${conflict.host}`,
      ),
    );
  }

  mcpServers.sort((a, b) => compareCodePoints(a.name, b.name));
  for (let i = 1; i < mcpServers.length; i++) {
    const a = mcpServers[i - 1]!;
    const b = mcpServers[i]!;
    if (a.name === b.name) {
      errors.push(
        compileError(
          "mcp_conflict",
          [a.bindingId, b.bindingId],
          `bindings ${a.bindingId} and ${b.bindingId} both expose an MCP server named ${a.name}`,
        ),
      );
    }
  }
  if (errors.length > 0) return undefined;

  const agents = compiled.filter((c) => c.checked.definition.mcp?.mcpConfig);
  for (const agent of agents) {
    applyAgentMcpConfig(
      agent.checked.definition,
      agent.checked.binding.id,
      pendingFiles,
      mcpServers,
      errors,
    );
  }

  const fileOwner = new Map<string, PlanFile>();
  for (const { bindingId, clientId, draft } of pendingFiles) {
    const parsed = planFileSchema.safeParse({
      id: `${bindingId}.file.${draft.fileId}`,
      bindingId,
      clientId,
      root: draft.root,
      path: draft.path,
      mode: draft.mode ?? 0o644,
      content: serializeRuntimeFile(draft),
    });
    if (!parsed.success) {
      invalid(bindingId, "file", zodIssues(parsed.error));
      continue;
    }
    const key = `${parsed.data.root}:${parsed.data.path}`;
    const previous = fileOwner.get(key);
    if (previous) {
      errors.push(
        compileError(
          "artifact_conflict",
          [previous.bindingId, bindingId],
          `bindings ${previous.bindingId} and ${bindingId} both write ${parsed.data.root}/${parsed.data.path}`,
        ),
      );
      continue;
    }
    fileOwner.set(key, parsed.data);
    files.push(parsed.data);
  }
  if (errors.length > 0) return undefined;

  return {
    schemaVersion: PLAN_SCHEMA_VERSION,
    profileVersionId,
    routes: routes.sort(byId),
    files: files.sort(byId),
    env: env.sort((a, b) => compareCodePoints(a.name, b.name)),
    processes: processes.sort(byId),
    workspaceSources: workspaceSources.sort(byId),
    mcpServers,
    agentRuntimes: agentRuntimes.sort(byId),
  };
}

function applyAgentMcpConfig(
  definition: AnyIntegrationDefinition,
  bindingId: string,
  pendingFiles: { bindingId: string; clientId: string; draft: RuntimeFileDraft }[],
  servers: readonly McpServer[],
  errors: CompileErrorDetail[],
): void {
  const target = definition.mcp?.mcpConfig;
  if (!target || servers.length === 0) return;
  const pending = pendingFiles.find(
    (f) =>
      f.bindingId === bindingId &&
      f.clientId === target.clientId &&
      f.draft.fileId === target.fileId,
  );
  if (!pending || pending.draft.format === "text" || pending.draft.format !== target.format) {
    errors.push(
      compileError(
        "invalid_compile_output",
        [bindingId],
        `binding ${bindingId} has no ${target.format} file ${target.fileId} for client ${target.clientId} to hold MCP servers`,
      ),
    );
    return;
  }
  pending.draft = { ...pending.draft, data: applyMcpServers(pending.draft.data, target, servers) };
}

/** Sets and lists inside a route are compared as sets: sort them so input order never shows. */
function normalizeRoute(route: EgressRoute): EgressRoute {
  const match = {
    hosts: [...new Set(route.match.hosts)].sort(compareCodePoints),
    ...(route.match.methods
      ? { methods: [...new Set(route.match.methods)].sort(compareCodePoints) }
      : {}),
    ...(route.match.pathPrefixes
      ? { pathPrefixes: [...new Set(route.match.pathPrefixes)].sort(compareCodePoints) }
      : {}),
    ...(route.match.excludeQuery
      ? {
          excludeQuery: route.match.excludeQuery
            .map((e) => ({ name: e.name, values: [...new Set(e.values)].sort(compareCodePoints) }))
            .sort((a, b) => compareCodePoints(a.name, b.name)),
        }
      : {}),
  };
  const mcp = route.mcp?.toolAllowlist
    ? { toolAllowlist: [...new Set(route.mcp.toolAllowlist)].sort(compareCodePoints) }
    : route.mcp;
  return { ...route, match, ...(mcp ? { mcp } : {}) };
}
