import type { z } from "zod";
import type { FormHints } from "./forms";
import type { JsonObject, JsonValue } from "./json";
import type { EgressRoute, McpServer, RouteAuth, RouteCredential, RouteMatch } from "./plan/schema";

/**
 * The IntegrationDefinition contract (SPEC §4.1). A definition is data plus pure behaviour; the
 * TypeScript types of its configs are inferred from its zod schemas and never written twice.
 *
 * Behaviour is declared with method syntax on purpose: it keeps a definition with specific schema
 * types assignable to `AnyIntegrationDefinition` (methods are checked bivariantly), which is what
 * lets a registry hold definitions of different shapes without casts.
 */

export type IntegrationKind = "agent" | "git" | "connector";

export type ConnectionMethodKind =
  | "api-key"
  | "oauth2-authorization-code"
  | "oauth2-client-credentials"
  | "github-app-installation";

export interface ConnectionMethod<Id extends string = string> {
  readonly id: Id;
  readonly label: string;
  readonly kind: ConnectionMethodKind;
  /** Non-secret connection config for this method (e.g. the Atlassian account email). */
  readonly configSchema?: z.ZodType;
  readonly configForm?: FormHints;
  /** Names of the secret inputs a user provides for this method (write-only, encrypted at rest). */
  readonly secretFields?: readonly string[];
}

/**
 * Connection config type of a method: what its schema outputs, an empty record for a method
 * without a schema, and `unknown` for the erased `ConnectionMethod` a registry holds.
 */
export type MethodConfig<M> = M extends { readonly configSchema: infer S extends z.ZodType }
  ? z.output<S>
  : M extends { readonly configSchema?: undefined }
    ? Record<string, never>
    : unknown;

/** Union of the connection config types of all methods (distributes over the method union). */
export type ConnectionConfigOf<M extends readonly ConnectionMethod[]> = MethodConfig<M[number]>;

export interface Clock {
  now(): Date;
}

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

// ---------------------------------------------------------------------------------------------
// Binding validation
// ---------------------------------------------------------------------------------------------

/** A binding validation issue. `code` is `family.reason`; `field` is a dotted path or "". */
export interface BindingIssue {
  code: string;
  field: string;
  message: string;
}

export interface TargetView<TC> {
  id: string;
  targetKey: string;
  config: TC;
}

export interface ConnectionView<CC> {
  id: string;
  methodId: string;
  methodKind: ConnectionMethodKind;
  config: CC;
  /** Provider-side subject, e.g. a GitHub App installation id. */
  externalSubjectId?: string;
}

export interface BindingView<BC> {
  id: string;
  config: BC;
}

export interface BindingContext<TC, CC, BC> {
  target: TargetView<TC>;
  connection: ConnectionView<CC>;
  binding: BindingView<BC>;
}

// ---------------------------------------------------------------------------------------------
// Compile output (drafts: the compiler assigns ids and binding ids)
// ---------------------------------------------------------------------------------------------

export interface RouteDraft {
  match: RouteMatch;
  upstream: { baseUrl: string };
  auth: RouteAuth;
  /** Omit for routes that need no credential (auth type "none"). */
  credential?: Omit<RouteCredential, "connectionId">;
  mcp?: { toolAllowlist?: string[] };
}

export type RuntimeFileDraft = {
  /** Stable id within the binding; an agent's `mcpConfig.fileId` refers to it. */
  fileId: string;
  root: "home" | "workspace";
  path: string;
  mode?: number;
} & (
  | { format: "json"; data: JsonObject }
  | { format: "toml"; data: JsonObject }
  | { format: "text"; text: string }
);

export interface ProcessDraft {
  key: string;
  command: string[];
  env?: Record<string, string>;
}

export interface RuntimeClientDraft {
  /** e.g. `codex-cli`, `claude-code`. At most one binding per profile may provide a client. */
  clientId: string;
  files?: RuntimeFileDraft[];
  env?: Record<string, string>;
  processes?: ProcessDraft[];
}

export interface WorkspaceSourceDraft {
  kind: "git";
  url: string;
  path: string;
  ref?: string;
}

export type McpServerDraft = DistributiveOmit<McpServer, "bindingId">;

export interface AgentRuntimeDraft {
  clientId: string;
  displayName: string;
  command: string[];
}

export interface CompileBindingOutput {
  routes?: RouteDraft[];
  runtimeClients?: RuntimeClientDraft[];
  workspaceSources?: WorkspaceSourceDraft[];
  mcpServers?: McpServerDraft[];
  agentRuntimes?: AgentRuntimeDraft[];
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

// ---------------------------------------------------------------------------------------------
// MCP
// ---------------------------------------------------------------------------------------------

/** Where an agent definition's client reads its MCP servers from. */
export interface McpConfigTarget {
  clientId: string;
  /** `fileId` of a file of that runtime client in this binding's compile output. */
  fileId: string;
  format: "toml" | "json";
  /** Key path inside the file's data where servers are written by name (e.g. ["mcp_servers"]). */
  path: readonly string[];
  /** The client's own entry shape for one server (`undefined` members are dropped). */
  renderServer(server: McpServer): { [key: string]: JsonValue | undefined };
}

// ---------------------------------------------------------------------------------------------
// Credentials, OAuth2, resources
// ---------------------------------------------------------------------------------------------

export interface ResolvedCredential {
  value: string;
  expiresAt?: Date;
}

export interface CredentialResolverContext<TC, TS, CC, BC> {
  target: TargetView<TC> & { secrets: TS };
  connection: ConnectionView<CC>;
  binding: BindingView<BC>;
  route: EgressRoute;
  fetch: FetchLike;
  clock: Clock;
}

export interface CredentialResolver<TC, TS, CC, BC> {
  resolve(ctx: CredentialResolverContext<TC, TS, CC, BC>): Promise<ResolvedCredential>;
  /**
   * What the value depends on, when it may be shared: resolutions with equal scopes (compared as
   * canonical JSON, per connection) reuse one value until shortly before its `expiresAt`, across
   * sessions, gateways and control-plane replicas. Without it every resolution calls `resolve`.
   */
  cacheScope?(ctx: CredentialResolverContext<TC, TS, CC, BC>): JsonValue;
}

export interface OAuth2TokenSet {
  accessToken: string;
  refreshToken?: string;
  expiresAt?: Date;
  scope?: string;
  tokenType?: string;
  /** Provider-side subject learned at exchange time (workspace, team, user id). Not secret. */
  externalSubjectId?: string;
}

export interface OAuth2TargetContext<TC, TS> {
  target: TargetView<TC> & { secrets: TS };
}

export interface OAuth2Behaviour<TC, TS, CC> {
  /** Build the authorization URL (PKCE S256). */
  authorizationUrl(
    ctx: OAuth2TargetContext<TC, TS> & {
      redirectUri: string;
      state: string;
      codeChallenge: string;
      scopes?: readonly string[];
    },
  ): string;
  exchangeCode(
    ctx: OAuth2TargetContext<TC, TS> & {
      code: string;
      redirectUri: string;
      codeVerifier: string;
      fetch: FetchLike;
      clock: Clock;
    },
  ): Promise<OAuth2TokenSet>;
  /** Throws `OAuth2Error` with kind `temporary` or `permanent`. */
  refresh(
    ctx: OAuth2TargetContext<TC, TS> & { refreshToken: string; fetch: FetchLike; clock: Clock },
  ): Promise<OAuth2TokenSet>;
  clientCredentials?(
    ctx: OAuth2TargetContext<TC, TS> & {
      connection: ConnectionView<CC>;
      secrets: Readonly<Record<string, string>>;
      fetch: FetchLike;
      clock: Clock;
    },
  ): Promise<OAuth2TokenSet>;
}

export interface ResourceItem {
  id: string;
  label: string;
}

export interface ResourceLister<TC, CC> {
  /** Resource kinds this definition can list (e.g. "repositories"). */
  kinds: readonly string[];
  list(ctx: {
    kind: string;
    target: TargetView<TC>;
    connection: ConnectionView<CC>;
    credential: string;
    fetch: FetchLike;
  }): Promise<ResourceItem[]>;
}

/**
 * Connecting by installing the provider's app (SPEC §5 github, "GitHub App installation"): the
 * control plane sends the user to `installUrl` with a state, and the provider's setup redirect
 * brings back an installation id it must not trust until `verifyInstallation` says the returning
 * user can access it. The connection stores no secret: credentials are minted per use.
 */
export interface AppInstallationBehaviour<TC, TS, CC> {
  /**
   * What the target lacks for installation connections (e.g. the app slug, the client
   * credentials the ownership check needs), as operator-facing sentences; empty when ready.
   */
  missingSetup(target: TargetView<TC> & { secrets: TS }): string[];
  /** The provider page where a user installs the app; `state` comes back to the setup URL. */
  installUrl(target: TargetView<TC> & { secrets: TS }, state: string): string;
  /**
   * Whether the user who returned with `code` can access `installationId`. False for an
   * installation they cannot access; throws `OAuth2Error` when the provider refuses the code
   * (permanent) or fails (temporary).
   */
  verifyInstallation(ctx: {
    target: TargetView<TC> & { secrets: TS };
    code: string;
    installationId: string;
    fetch: FetchLike;
    clock: Clock;
  }): Promise<boolean>;
  /**
   * A credential for the control plane's own calls on an installation connection (credential
   * test, resource listing): the installation's, not narrowed to any binding. Cached like a
   * resolver's value when `cacheScope` is given.
   */
  connectionCredential: {
    resolve(ctx: InstallationCredentialContext<TC, TS, CC>): Promise<ResolvedCredential>;
    cacheScope?(ctx: InstallationCredentialContext<TC, TS, CC>): JsonValue;
  };
  /**
   * What a webhook event of this type does to the installation connection it was resolved to:
   * `deleted` (the installation is gone: revoke the connection), `suspended` (unusable until
   * restored), `restored` (usable again), `changed` (permissions or repositories changed: drop
   * cached credentials). `undefined`: nothing.
   */
  lifecycleOf(eventType: string): "deleted" | "suspended" | "restored" | "changed" | undefined;
}

export interface InstallationCredentialContext<TC, TS, CC> {
  target: TargetView<TC> & { secrets: TS };
  connection: ConnectionView<CC>;
  fetch: FetchLike;
  clock: Clock;
}

export interface CredentialTest<TC, CC> {
  /** Checks a credential against the provider (the `POST /connections/{id}/test` action). */
  test(ctx: {
    target: TargetView<TC>;
    connection: ConnectionView<CC>;
    credential: string;
    fetch: FetchLike;
  }): Promise<{ ok: boolean; message: string }>;
}

// ---------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------

export interface WebhookRequest {
  /** Lower-cased header names (see `normalizeHeaders`). */
  headers: Readonly<Record<string, string>>;
  rawBody: Uint8Array;
}

export interface WebhookEvent {
  /** Provider delivery id, the dedupe key together with the target. */
  deliveryId: string;
  /** `family.event[.action]`, e.g. `github.issues.opened`. */
  eventType: string;
  externalSubjectId?: string;
  occurredAt?: string;
  /** Provider retry attempt number when the provider marks retries. */
  retryAttempt?: number;
  payload: JsonValue;
}

export interface WebhookImmediateResponse {
  status: number;
  headers?: Record<string, string>;
  body: string;
}

export type WebhookParseResult =
  | { kind: "response"; response: WebhookImmediateResponse }
  | { kind: "event"; event: WebhookEvent }
  | { kind: "invalid"; message: string };

export type WebhookVerifyFailure =
  | "missing_secret"
  | "missing_signature"
  | "bad_signature"
  | "stale_timestamp";

export type WebhookVerifyResult = { ok: true } | { ok: false; reason: WebhookVerifyFailure };

export interface WebhookConnectionCandidate {
  id: string;
  externalSubjectId?: string;
  config: unknown;
}

export interface WebhookBehaviour<TS, TC = unknown> {
  eventTypes: readonly string[];
  parse(request: WebhookRequest): WebhookParseResult;
  /** Target config is given so a definition can refuse webhooks a target has not turned on. */
  verify(
    request: WebhookRequest,
    ctx: { targetConfig: TC; targetSecrets: TS; now: Date },
  ): WebhookVerifyResult;
  resolveConnection(
    event: WebhookEvent,
    candidates: readonly WebhookConnectionCandidate[],
  ): string | undefined;
}

// ---------------------------------------------------------------------------------------------
// The definition
// ---------------------------------------------------------------------------------------------

export interface IntegrationDefinition<
  TC extends z.ZodType = z.ZodType,
  TS extends z.ZodType = z.ZodType,
  BC extends z.ZodType = z.ZodType,
  M extends readonly ConnectionMethod[] = readonly ConnectionMethod[],
> {
  readonly familyId: string;
  readonly variantId: string;
  readonly kind: IntegrationKind;
  readonly displayName: string;
  readonly description: string;
  readonly logoKey: string;
  readonly docsUrl: string;

  readonly targetConfigSchema: TC;
  readonly targetConfigForm?: FormHints;
  readonly targetSecretSchema: TS;
  readonly targetSecretForm?: FormHints;

  readonly connectionMethods: M;

  readonly bindingConfigSchema: BC;
  readonly bindingForm?: FormHints;

  validateBinding?(
    ctx: BindingContext<z.output<TC>, ConnectionConfigOf<M>, z.output<BC>>,
  ): BindingIssue[];

  compileBinding(
    input: BindingContext<z.output<TC>, ConnectionConfigOf<M>, z.output<BC>>,
  ): CompileBindingOutput;

  readonly credentialResolvers?: Readonly<
    Record<
      string,
      CredentialResolver<z.output<TC>, z.output<TS>, ConnectionConfigOf<M>, z.output<BC>>
    >
  >;
  readonly oauth2?: OAuth2Behaviour<z.output<TC>, z.output<TS>, ConnectionConfigOf<M>>;
  readonly webhook?: WebhookBehaviour<z.output<TS>, z.output<TC>>;
  readonly mcp?: { readonly mcpConfig?: McpConfigTarget };
  readonly resources?: ResourceLister<z.output<TC>, ConnectionConfigOf<M>>;
  readonly credentialTest?: CredentialTest<z.output<TC>, ConnectionConfigOf<M>>;
  /** Required by `github-app-installation` methods. */
  readonly appInstallation?: AppInstallationBehaviour<
    z.output<TC>,
    z.output<TS>,
    ConnectionConfigOf<M>
  >;
}

/** The erased form a registry holds; every use parses configs with the definition's schemas first. */
export type AnyIntegrationDefinition = IntegrationDefinition;

/**
 * Declares a definition. It only fixes the generic parameters so every callback sees the types
 * inferred from the schemas; structural checks happen when the definition is registered.
 */
export function defineIntegration<
  TC extends z.ZodType,
  TS extends z.ZodType,
  BC extends z.ZodType,
  const M extends readonly ConnectionMethod[],
>(definition: IntegrationDefinition<TC, TS, BC, M>): IntegrationDefinition<TC, TS, BC, M> {
  return definition;
}
