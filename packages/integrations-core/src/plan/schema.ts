import { z } from "zod";

/**
 * The compiled runtime plan: the one artefact the control plane stores (by digest), the gateway
 * enforces, and the sandbox side materialises. It is strict (unknown keys are rejected) and never
 * holds a secret: credentials are referenced by connection id and resolved just in time.
 */

export const PLAN_SCHEMA_VERSION = 1 as const;

const nonEmpty = z.string().min(1);

/** `host` or `host:port`, lower case, default ports (80/443) removed. */
export const routeHostSchema = z
  .string()
  .regex(/^[a-z0-9.-]+(:[0-9]{1,5})?$/, "host must be lower-case host[:port] without default port")
  .refine((h) => !/:(80|443)$/.test(h), "default ports (80/443) must be omitted");

export const httpMethodSchema = z
  .string()
  .regex(/^[A-Z]+$/, "method must be an upper-case HTTP token");

/** A path prefix: starts with `/`, no trailing slash unless it is `/` itself, no dot segments. */
export const pathPrefixSchema = z
  .string()
  .regex(/^\/[^?#\s]*$/, "path prefix must start with / and hold no query, fragment or space")
  .refine((p) => p === "/" || !p.endsWith("/"), "path prefix must not end with / (except '/')")
  .refine(
    (p) => !p.split("/").some((s) => s === "." || s === ".."),
    "path prefix must not contain dot segments",
  );

/**
 * A query parameter value that takes a request out of a route: a read-only git route excludes
 * `service=git-receive-pack` (the push's ref discovery on the otherwise routed `info/refs`).
 * Names compare exactly; values case-insensitively after percent- and `+`-decoding, and a
 * parameter that does not decode counts as excluded.
 */
export const queryExclusionSchema = z.strictObject({
  name: nonEmpty,
  values: z.array(nonEmpty).min(1),
});

export const routeMatchSchema = z.strictObject({
  hosts: z.array(routeHostSchema).min(1),
  methods: z.array(httpMethodSchema).min(1).optional(),
  pathPrefixes: z.array(pathPrefixSchema).min(1).optional(),
  /**
   * Requests this route refuses by query. It narrows a route, never widens one, so two routes
   * overlap exactly when their hosts, methods and paths do (a request without a query matches
   * both).
   */
  excludeQuery: z.array(queryExclusionSchema).min(1).optional(),
});

export const routeAuthSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("bearer"),
    name: z.literal("authorization"),
    scheme: nonEmpty,
  }),
  z.strictObject({
    type: z.literal("basic"),
    name: z.literal("authorization"),
    username: nonEmpty,
  }),
  z.strictObject({
    type: z.literal("header"),
    name: z.string().regex(/^[a-z0-9-]+$/, "header name must be a lower-case token"),
    scheme: nonEmpty.optional(),
  }),
  z.strictObject({ type: z.literal("query"), name: nonEmpty }),
  z.strictObject({ type: z.literal("none") }),
]);

export const routeCredentialSchema = z.strictObject({
  connectionId: nonEmpty,
  secretType: nonEmpty,
  resolver: nonEmpty.optional(),
});

export const routeSchema = z.strictObject({
  id: nonEmpty,
  bindingId: nonEmpty,
  match: routeMatchSchema,
  /** Origin (`scheme://host[:port]`) the gateway forwards to; the request path and query are kept. */
  upstream: z.strictObject({
    baseUrl: z.url({ protocol: /^https?$/ }).refine((u) => {
      const url = new URL(u);
      return url.pathname === "/" && !url.search && !url.hash && !url.username && !url.password;
    }, "upstream baseUrl must be an origin without path, query, fragment or userinfo"),
  }),
  auth: routeAuthSchema,
  credential: routeCredentialSchema.optional(),
  mcp: z.strictObject({ toolAllowlist: z.array(nonEmpty).optional() }).optional(),
});

export const fileRootSchema = z.enum(["home", "workspace"]);

export const planFileSchema = z.strictObject({
  id: nonEmpty,
  bindingId: nonEmpty,
  clientId: nonEmpty,
  root: fileRootSchema,
  /** Relative path below `root`, `/`-separated, no dot segments. */
  path: z
    .string()
    .regex(/^[^/\0][^\0]*$/, "file path must be relative")
    .refine((p) => !p.split("/").some((s) => s === "" || s === "." || s === ".."), {
      message: "file path must not contain empty or dot segments",
    }),
  mode: z.number().int().min(0).max(0o777),
  content: z.string(),
});

export const planEnvSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "env name must be a shell identifier"),
  value: z.string(),
  bindingId: nonEmpty,
});

export const planProcessSchema = z.strictObject({
  id: nonEmpty,
  bindingId: nonEmpty,
  clientId: nonEmpty,
  command: z.array(nonEmpty).min(1),
  env: z.record(z.string(), z.string()),
});

export const workspaceSourceSchema = z.strictObject({
  id: nonEmpty,
  bindingId: nonEmpty,
  kind: z.literal("git"),
  url: z.url(),
  path: nonEmpty,
  ref: nonEmpty.optional(),
});

export const mcpServerSchema = z.discriminatedUnion("transport", [
  z.strictObject({
    name: z.string().regex(/^[a-z0-9_-]+$/, "MCP server name must be [a-z0-9_-]"),
    bindingId: nonEmpty,
    transport: z.literal("streamable-http"),
    url: z.url({ protocol: /^https?$/ }),
    headers: z.record(z.string(), z.string()).optional(),
  }),
  z.strictObject({
    name: z.string().regex(/^[a-z0-9_-]+$/, "MCP server name must be [a-z0-9_-]"),
    bindingId: nonEmpty,
    transport: z.literal("stdio"),
    command: nonEmpty,
    args: z.array(z.string()),
    env: z.record(z.string(), z.string()),
  }),
]);

export const agentRuntimeSchema = z.strictObject({
  id: nonEmpty,
  bindingId: nonEmpty,
  clientId: nonEmpty,
  displayName: nonEmpty,
  command: z.array(nonEmpty).min(1),
});

export const egressPolicySchema = z.strictObject({
  default: z.enum(["allow", "deny"]),
  allowHosts: z.array(routeHostSchema),
});

export const compiledPlanSchema = z.strictObject({
  schemaVersion: z.literal(PLAN_SCHEMA_VERSION),
  profileVersionId: nonEmpty,
  routes: z.array(routeSchema),
  files: z.array(planFileSchema),
  env: z.array(planEnvSchema),
  processes: z.array(planProcessSchema),
  workspaceSources: z.array(workspaceSourceSchema),
  mcpServers: z.array(mcpServerSchema),
  agentRuntimes: z.array(agentRuntimeSchema),
  /** Per-profile egress policy for hosts no route names; absent = the deployment default. */
  egressPolicy: egressPolicySchema.optional(),
});

export type RouteMatch = z.infer<typeof routeMatchSchema>;
export type RouteAuth = z.infer<typeof routeAuthSchema>;
export type RouteCredential = z.infer<typeof routeCredentialSchema>;
export type EgressRoute = z.infer<typeof routeSchema>;
export type PlanFile = z.infer<typeof planFileSchema>;
export type PlanEnv = z.infer<typeof planEnvSchema>;
export type PlanProcess = z.infer<typeof planProcessSchema>;
export type WorkspaceSource = z.infer<typeof workspaceSourceSchema>;
export type McpServer = z.infer<typeof mcpServerSchema>;
export type AgentRuntime = z.infer<typeof agentRuntimeSchema>;
export type EgressPolicy = z.infer<typeof egressPolicySchema>;
export type CompiledRuntimePlan = z.infer<typeof compiledPlanSchema>;
