import { DecryptError, type KeyRing } from "@keyway/crypto";
import { type Database, type DatabaseHandle, isDatabaseUnavailable } from "@keyway/db";
import {
  type AnyIntegrationDefinition,
  type Clock,
  type ConnectionMethod,
  type ConnectionView,
  type EgressRoute,
  type FetchLike,
  type IntegrationRegistry,
  OAuth2Error,
  routeCredentialSchema,
  routeSchema,
} from "@keyway/integrations-core";
import { inSpan, type Context as TraceContext, type Tracer } from "@keyway/observability";
import type { TimedAuditEntry } from "../audit/service";
import { credentialValueOf } from "../connections/service";
import type { CredentialCache } from "../credentials/credential-cache";
import type { OAuth2Tokens, RefreshGrant, TokenRequester } from "../credentials/oauth2-tokens";
import {
  type CurrentCredential,
  type DecryptedCredentials,
  decryptTargetSecrets,
} from "../credentials/secret-store";
import type { Logger } from "../logger";
import type { ApiMetrics } from "../metrics";
import type { StatementBatcher } from "../statement-batcher";
import type { ResolutionFacts, ResolutionKey } from "./queries";
import { ResolutionRefusal, refuse } from "./refusals";

export interface ResolutionDeps {
  db: Database;
  /** The same database's postgres.js client, for the resolution's prepared statement. */
  sql: DatabaseHandle["sql"];
  metrics?: Pick<ApiMetrics, "resolutions" | "resolutionDuration" | "auditAppend">;
  /** Spans around the resolution's database work; absent when traces are off. */
  tracer?: Tracer | undefined;
  keyRing: KeyRing;
  registry: IntegrationRegistry;
  clock: Clock;
  fetch: FetchLike;
  logger: Logger;
  /** OAuth2 tokens: refresh single-flight and the client-credentials cache (one per process). */
  tokens: OAuth2Tokens;
  /** Resolver-minted values shared until shortly before they expire (one per app). */
  credentials: CredentialCache;
  /** Stored credential versions, each decrypted once (one per app). */
  decryptedCredentials: DecryptedCredentials;
  /**
   * Where each resolution's audit entry goes: concurrent resolutions' entries share one insert
   * and commit (one per app); the answer waits until its entry is committed.
   */
  auditEntries: StatementBatcher<TimedAuditEntry, void>;
  /**
   * Where each resolution's read goes (`selectResolutionFacts` over many keys, one per app):
   * concurrent resolutions — a gateway's batch, or many gateways' requests in one turn — share
   * one statement and round trip.
   */
  facts: StatementBatcher<ResolutionKey, ResolutionFacts | undefined>;
}

export interface ResolutionRequest {
  /**
   * The request's database, bound by its deadline (`c.var.db`): what a resolution writes in a
   * transaction (an OAuth2 refresh, marking a connection `error`) never commits after it.
   */
  db: Database;
  sessionId: string;
  routeId: string;
  gatewayId: string;
  requestId?: string;
  /**
   * The W3C trace id the gateway sent (`traceparent`: the sandbox request's trace), recorded in
   * the audit entry; without one the entry carries the request id.
   */
  traceId?: string | undefined;
  /** The request's span, parent of the resolution's spans. */
  traceContext?: TraceContext | undefined;
}

export interface ResolvedRouteCredential {
  value: string;
  expiresAt: Date | null;
  /**
   * The connection's credential version the value came from. Resolver-minted values (GitHub App
   * installation tokens) have no stored version and report the connection's current one.
   */
  credentialVersion: number;
}

/**
 * How the value was obtained, for the audit entry: `stored-secret`, `oauth2-token`,
 * `oauth2-refresh`, `client-credentials` or `resolver:<name>`.
 */
type Source = string;

/** What is known about the request so far, for the audit entry whatever the outcome. */
interface AuditFacts {
  organizationId: string | null;
  connectionId: string | null;
}

/**
 * `POST /internal/v1/credentials/resolve` (SPEC §6.3): checks the session is live, takes the
 * route from the session's own plan (the gateway never names a connection), checks the route's
 * connection and target, and produces the credential. Every outcome — value or refusal — is
 * written to the audit log, never with the value itself. Each item of
 * `POST /internal/v1/credentials/resolve-batch` is one call, so it is refused, audited and traced
 * exactly as alone; the reads of calls in one event-loop turn share one statement (`facts`).
 */
export async function resolveRouteCredential(
  deps: ResolutionDeps,
  request: ResolutionRequest,
): Promise<ResolvedRouteCredential> {
  const started = performance.now();
  const found = await inDatabaseSpan(deps, request, "select resolution", () =>
    deps.facts.submit(request),
  );
  const facts: AuditFacts = { organizationId: null, connectionId: null };
  const audit = (action: string, details: Record<string, unknown>) =>
    inDatabaseSpan(deps, request, "audit append", async () => {
      const appendStarted = performance.now();
      await deps.auditEntries.submit({
        createdAt: deps.clock.now(),
        entry: {
          organizationId: facts.organizationId,
          actor: `gateway:${request.gatewayId}`,
          action,
          subjectType: "sandbox_session",
          subjectId: request.sessionId,
          traceId: auditTraceId(request),
          details: {
            sessionId: request.sessionId,
            routeId: request.routeId,
            connectionId: facts.connectionId,
            gatewayId: request.gatewayId,
            ...details,
          },
        },
      });
      deps.metrics?.auditAppend.observe((performance.now() - appendStarted) / 1000, action);
    });
  const count = (outcome: "resolved" | "refused", reason: string) => {
    deps.metrics?.resolutions.inc(outcome, reason);
    deps.metrics?.resolutionDuration.observe((performance.now() - started) / 1000, outcome);
  };

  let resolved: ResolvedRouteCredential & { source: Source };
  try {
    resolved = await resolveChecked(deps, request, found, facts);
  } catch (error) {
    const refusal = asRefusal(error, deps.logger, request);
    if (!refusal) throw error;
    await audit("credential.refused", { code: refusal.code, reason: refusal.reason });
    count("refused", refusal.code);
    throw refusal;
  }
  await audit("credential.resolved", {
    reason: resolved.source,
    credentialVersion: resolved.credentialVersion,
  });
  count("resolved", resolved.source);
  return {
    value: resolved.value,
    expiresAt: resolved.expiresAt,
    credentialVersion: resolved.credentialVersion,
  };
}

/** The audit entry's trace id: the W3C trace the gateway sent, else this request's id. */
function auditTraceId(request: ResolutionRequest): string | null {
  return request.traceId ?? request.requestId ?? null;
}

/** A span around a step of the resolution that talks to PostgreSQL (when traces are on). */
function inDatabaseSpan<T>(
  deps: ResolutionDeps,
  request: ResolutionRequest,
  operation: string,
  work: () => Promise<T>,
): Promise<T> {
  return inSpan(
    deps.tracer,
    `db ${operation}`,
    request.traceContext,
    { "db.system.name": "postgresql", "db.operation.name": operation },
    work,
  );
}

/** Refusals pass through; a stored secret that no longer decrypts is an unavailable credential. */
function asRefusal(
  error: unknown,
  logger: Logger,
  request: ResolutionRequest,
): ResolutionRefusal | undefined {
  if (error instanceof ResolutionRefusal) return error;
  if (error instanceof DecryptError) {
    // The message names the row and column only (packages/crypto), never a value.
    logger.error("stored secret does not decrypt", {
      requestId: request.requestId,
      code: error.code,
      message: error.message,
    });
    return refuse("credential_unavailable", "stored_secret_unreadable");
  }
  return undefined;
}

async function resolveChecked(
  deps: ResolutionDeps,
  request: ResolutionRequest,
  found: ResolutionFacts | undefined,
  facts: AuditFacts,
): Promise<ResolvedRouteCredential & { source: Source }> {
  const now = deps.clock.now();
  if (!found) throw refuse("session_not_live", "session_not_found");
  facts.organizationId = found.organizationId;
  if (found.revokedAtMs !== null) throw refuse("session_not_live", "session_revoked");
  // Live means what the sessions module says (`sessionStatus`): not revoked, before the hard end.
  // Token expiry is the gateway's check on each sandbox request.
  if (now.getTime() >= found.expiresAtMs) throw refuse("session_not_live", "session_expired");

  if (!found.planFound) {
    throw new Error(`plan ${found.planDigest} of session ${found.sessionId} is missing`);
  }
  if (found.route === null) throw refuse("route_not_in_plan", "route_not_in_plan");
  // Validated on the way out: a credential is released for what the route names. Stored secrets
  // and OAuth2 tokens read only the route's `credential`, so only that is checked for them; a
  // resolver, which is handed the whole route, gets it validated whole (`fromResolver`). The
  // whole route's schema (upstream URL, match patterns) was ≈ 60 µs of the API's CPU per cold
  // resolution, the largest single part of it (`pnpm bench:storm --profile`).
  const credential = routeCredentialSchema.optional().parse(storedRouteCredential(found.route));
  if (!credential) throw refuse("route_has_no_credential", "route_has_no_credential");
  facts.connectionId = credential.connectionId;

  const { connection, target } = found;
  // A plan naming another organization's connection would be a compiler bug; never follow it.
  if (!connection || !target || connection.organizationId !== found.organizationId) {
    throw refuse("connection_not_active", "connection_not_found");
  }
  if (connection.status !== "active") {
    throw refuse("connection_not_active", `connection_${connection.status}`);
  }
  if (!target.enabled) throw refuse("target_disabled", "target_disabled");

  const definition = deps.registry.get(target.variantId);
  if (!definition) throw refuse("credential_unavailable", "unknown_definition");
  const method = definition.connectionMethods.find((m) => m.id === connection.methodId);
  if (!method) throw refuse("credential_unavailable", "unknown_connection_method");

  const row: RouteConnectionRow = { connection, target, bindingConfig: found.bindingConfig };
  const context = new ResolutionContext(deps, request, row, definition, method);
  if (credential.resolver !== undefined) {
    return context.fromResolver(routeSchema.parse(found.route), credential.resolver);
  }
  if (!found.credential) throw refuse("credential_unavailable", "no_stored_credential");
  const { expiresAtMs, ...stored } = found.credential;
  const current = deps.decryptedCredentials.decrypt({
    ...stored,
    expiresAt: expiresAtMs === null ? null : new Date(expiresAtMs),
  });
  if (current.credential.kind === "oauth2-token-set") return context.oauth2AccessToken();
  if (method.kind === "oauth2-client-credentials") {
    return context.clientCredentialsToken(current, current.credential.fields);
  }
  return context.storedSecret(current);
}

/** The `credential` member of a route read from a stored plan (unvalidated JSON). */
function storedRouteCredential(route: unknown): unknown {
  // The compiler stores routes as objects: anything else is a corrupt plan, not a refusal.
  if (typeof route !== "object" || route === null || Array.isArray(route)) {
    throw new Error("a stored plan's route is not an object");
  }
  return "credential" in route ? route.credential : undefined;
}

/** The route's connection, its target and the route's binding config, as the query read them. */
interface RouteConnectionRow {
  connection: NonNullable<ResolutionFacts["connection"]>;
  target: NonNullable<ResolutionFacts["target"]>;
  bindingConfig: unknown;
}

/** The pieces of one resolution, parsed from the database only when a path needs them. */
class ResolutionContext {
  constructor(
    readonly deps: ResolutionDeps,
    readonly request: ResolutionRequest,
    readonly row: RouteConnectionRow,
    readonly definition: AnyIntegrationDefinition,
    readonly method: ConnectionMethod,
  ) {}

  /**
   * An API key: the method's first secret field — the same mapping the connections module uses
   * for its own provider calls (`credentialValueOf`), so a route injects what `test` checked.
   */
  storedSecret(current: CurrentCredential) {
    const value = credentialValueOf(this.method, current.credential);
    if (value === undefined || value === "") {
      throw refuse("credential_unavailable", "secret_field_missing");
    }
    return {
      value,
      expiresAt: current.expiresAt,
      credentialVersion: current.version,
      source: "stored-secret",
    };
  }

  /**
   * The stored access token, refreshed first when it expires within `REFRESH_WINDOW_MS`: once
   * across replicas, with the connection put in `error` when the refresh fails for good
   * (`credentials/oauth2-tokens.ts`).
   */
  async oauth2AccessToken() {
    const oauth2 = this.definition.oauth2;
    const target = oauth2 ? this.targetWithSecrets() : undefined;
    const refresh: RefreshGrant | undefined =
      oauth2 && target
        ? (refreshToken, fetch) =>
            oauth2.refresh({ target, refreshToken, fetch, clock: this.deps.clock })
        : undefined;
    try {
      return await this.deps.tokens.accessToken(this.connectionRef(), refresh, this.requester());
    } catch (error) {
      return this.providerFailure(error, { markedAlready: true });
    }
  }

  /**
   * OAuth2 client credentials: the stored fields hold the client secret, and the control plane
   * mints an access token from the token endpoint and caches it until shortly before it expires
   * (per credential version, so a rotated secret mints anew). Gateways cache it as well.
   */
  async clientCredentialsToken(current: CurrentCredential, fields: Record<string, string>) {
    const grant = this.definition.oauth2?.clientCredentials;
    if (!grant) throw refuse("credential_unavailable", "client_credentials_unsupported");
    const target = this.targetWithSecrets();
    const connection = this.connectionView();
    try {
      return await this.deps.tokens.clientCredentialsToken(
        { ...this.connectionRef(), credentialVersion: current.version },
        (fetch) => grant({ target, connection, secrets: fields, fetch, clock: this.deps.clock }),
        this.requester(),
      );
    } catch (error) {
      return this.providerFailure(error, { markedAlready: true });
    }
  }

  private connectionRef() {
    const { connection } = this.row;
    return { id: connection.id, organizationId: connection.organizationId };
  }

  private requester(): TokenRequester {
    return {
      db: this.request.db,
      actor: `gateway:${this.request.gatewayId}`,
      traceId: auditTraceId(this.request),
      details: { sessionId: this.request.sessionId },
    };
  }

  /** A definition resolver (e.g. `github_app_installation_token`) computes the value. */
  async fromResolver(route: EgressRoute, name: string) {
    const resolver = this.definition.credentialResolvers?.[name];
    if (!resolver) throw refuse("credential_unavailable", "unknown_resolver");
    if (this.row.bindingConfig === null)
      throw refuse("credential_unavailable", "binding_not_found");
    const binding = this.definition.bindingConfigSchema.safeParse(this.row.bindingConfig);
    if (!binding.success) throw refuse("credential_unavailable", "invalid_binding_config");
    const { connection } = this.row;
    const ctx = {
      target: this.targetWithSecrets(),
      connection: this.connectionView(),
      binding: { id: route.bindingId, config: binding.data },
      route,
      fetch: this.deps.fetch,
      clock: this.deps.clock,
    };
    try {
      // A resolver naming its cache scope mints once per scope until near expiry (GitHub App
      // installation tokens: per installation, repositories and permissions), not per resolution.
      const resolved =
        resolver.cacheScope === undefined
          ? await resolver.resolve(ctx)
          : await this.deps.credentials.obtain(
              {
                connectionId: connection.id,
                organizationId: connection.organizationId,
                resolver: name,
                scope: resolver.cacheScope(ctx),
              },
              () => resolver.resolve(ctx),
            );
      return {
        value: resolved.value,
        expiresAt: resolved.expiresAt ?? null,
        credentialVersion: this.row.connection.credentialVersion,
        source: `resolver:${name}`,
      };
    } catch (error) {
      return this.providerFailure(error);
    }
  }

  private targetWithSecrets() {
    const { target } = this.row;
    const config = this.definition.targetConfigSchema.safeParse(target.config);
    if (!config.success) throw refuse("credential_unavailable", "invalid_target_config");
    const secrets = this.definition.targetSecretSchema.safeParse(
      decryptTargetSecrets(this.deps.keyRing, target.id, target.secretsCiphertext),
    );
    if (!secrets.success) throw refuse("credential_unavailable", "invalid_target_secrets");
    return {
      id: target.id,
      targetKey: target.targetKey,
      config: config.data,
      secrets: secrets.data,
    };
  }

  private connectionView(): ConnectionView<unknown> {
    const { connection } = this.row;
    const schema = this.method.configSchema;
    const parsed = schema ? schema.safeParse(connection.config) : { success: true, data: {} };
    if (!parsed.success) throw refuse("credential_unavailable", "invalid_connection_config");
    return {
      id: connection.id,
      methodId: connection.methodId,
      methodKind: connection.methodKind,
      config: parsed.data,
      ...(connection.externalSubjectId !== null
        ? { externalSubjectId: connection.externalSubjectId }
        : {}),
    };
  }

  /**
   * A provider said no. Permanent failures (revoked grant, deleted installation, bad client)
   * cannot heal by retrying, so the connection goes to `error` — in one transaction with its
   * audit entry and an invalidation for gateways — and a user must reconnect it. Temporary ones
   * (network, 5xx, rate limits) change nothing. Either way the gateway gets 502.
   */
  private async providerFailure(
    error: unknown,
    options: { markedAlready?: boolean } = {},
  ): Promise<never> {
    if (error instanceof ResolutionRefusal || error instanceof DecryptError) throw error;
    // The credential cache reads and writes the database: its outage is a 503, not the provider's.
    if (isDatabaseUnavailable(error)) throw error;
    const failure =
      error instanceof OAuth2Error
        ? error
        : new OAuth2Error("temporary", "resolver_error", "the credential provider failed");
    this.deps.logger.warn("credential provider failure", {
      requestId: this.request.requestId,
      connectionId: this.row.connection.id,
      kind: failure.kind,
      code: failure.code,
      ...(error instanceof OAuth2Error
        ? {}
        : { error: error instanceof Error ? error.name : "unknown" }),
    });
    if (failure.kind === "permanent" && !options.markedAlready) {
      await this.deps.tokens.markConnectionError(this.connectionRef(), failure, this.requester());
    }
    throw refuse("credential_unavailable", `provider_${failure.kind}:${failure.code}`);
  }
}
