import { DecryptError, type KeyRing } from "@keyway/crypto";
import { type Database, type Executor, integrationConnections } from "@keyway/db";
import {
  type AnyIntegrationDefinition,
  type Clock,
  type ConnectionMethod,
  type ConnectionView,
  type EgressRoute,
  type FetchLike,
  type IntegrationRegistry,
  OAuth2Error,
  type OAuth2TokenSet,
} from "@keyway/integrations-core";
import { and, eq } from "drizzle-orm";
import { appendAudit } from "../audit/service";
import { credentialValueOf } from "../connections/service";
import {
  type CurrentCredential,
  decryptTargetSecrets,
  readCurrentCredential,
  tokenSetCredential,
  writeCredentialVersion,
} from "../credentials/secret-store";
import { publishInvalidation } from "../events/invalidations";
import type { Logger } from "../logger";
import type { PlanCache } from "./plan-cache";
import { type RouteConnectionRow, selectRouteConnection, selectSession } from "./queries";
import { ResolutionRefusal, refuse } from "./refusals";

/** An OAuth2 access token this close to its expiry is refreshed before it is handed out. */
export const REFRESH_WINDOW_MS = 60_000;

export interface ResolutionDeps {
  db: Database;
  keyRing: KeyRing;
  registry: IntegrationRegistry;
  clock: Clock;
  fetch: FetchLike;
  logger: Logger;
  plans: PlanCache;
}

export interface ResolutionRequest {
  sessionId: string;
  routeId: string;
  gatewayId: string;
  requestId?: string;
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
 * written to the audit log, never with the value itself.
 */
export async function resolveRouteCredential(
  deps: ResolutionDeps,
  request: ResolutionRequest,
): Promise<ResolvedRouteCredential> {
  const facts: AuditFacts = { organizationId: null, connectionId: null };
  const audit = (action: string, details: Record<string, unknown>) =>
    appendAudit(deps.db, deps.clock, {
      organizationId: facts.organizationId,
      actor: `gateway:${request.gatewayId}`,
      action,
      subjectType: "sandbox_session",
      subjectId: request.sessionId,
      traceId: request.requestId ?? null,
      details: {
        sessionId: request.sessionId,
        routeId: request.routeId,
        connectionId: facts.connectionId,
        gatewayId: request.gatewayId,
        ...details,
      },
    });

  let resolved: ResolvedRouteCredential & { source: Source };
  try {
    resolved = await resolveChecked(deps, request, facts);
  } catch (error) {
    const refusal = asRefusal(error, deps.logger, request);
    if (!refusal) throw error;
    await audit("credential.refused", { code: refusal.code, reason: refusal.reason });
    throw refusal;
  }
  await audit("credential.resolved", {
    reason: resolved.source,
    credentialVersion: resolved.credentialVersion,
  });
  return {
    value: resolved.value,
    expiresAt: resolved.expiresAt,
    credentialVersion: resolved.credentialVersion,
  };
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
  facts: AuditFacts,
): Promise<ResolvedRouteCredential & { source: Source }> {
  const now = deps.clock.now();
  const session = await selectSession(deps.db, request.sessionId);
  if (!session) throw refuse("session_not_live", "session_not_found");
  facts.organizationId = session.organizationId;
  if (session.revokedAt !== null) throw refuse("session_not_live", "session_revoked");
  // Live means what the sessions module says (`sessionStatus`): not revoked, before the hard end.
  // Token expiry is the gateway's check on each sandbox request.
  if (now.getTime() >= session.expiresAt.getTime()) {
    throw refuse("session_not_live", "session_expired");
  }

  const plan = await deps.plans.get(deps.db, session.planDigest);
  if (!plan) throw new Error(`plan ${session.planDigest} of session ${session.id} is missing`);
  const route = plan.routes.get(request.routeId);
  if (!route) throw refuse("route_not_in_plan", "route_not_in_plan");
  if (!route.credential) throw refuse("route_has_no_credential", "route_has_no_credential");
  facts.connectionId = route.credential.connectionId;

  const row = await selectRouteConnection(deps.db, {
    connectionId: route.credential.connectionId,
    bindingId: route.bindingId,
    profileVersionId: session.profileVersionId,
  });
  // A plan naming another organization's connection would be a compiler bug; never follow it.
  if (!row || row.connection.organizationId !== session.organizationId) {
    throw refuse("connection_not_active", "connection_not_found");
  }
  if (row.connection.status !== "active") {
    throw refuse("connection_not_active", `connection_${row.connection.status}`);
  }
  if (!row.target.enabled) throw refuse("target_disabled", "target_disabled");

  const definition = deps.registry.get(row.target.variantId);
  if (!definition) throw refuse("credential_unavailable", "unknown_definition");
  const method = definition.connectionMethods.find((m) => m.id === row.connection.methodId);
  if (!method) throw refuse("credential_unavailable", "unknown_connection_method");

  const context = new ResolutionContext(deps, request, row, definition, method, route);
  if (route.credential.resolver !== undefined) {
    return context.fromResolver(route.credential.resolver);
  }
  const current = await readCurrentCredential(deps.db, deps.keyRing, row.connection.id);
  if (!current) throw refuse("credential_unavailable", "no_stored_credential");
  if (current.credential.kind === "oauth2-token-set") return context.oauth2AccessToken(current);
  if (method.kind === "oauth2-client-credentials") {
    return context.clientCredentialsToken(current, current.credential.fields);
  }
  return context.storedSecret(current);
}

/** The pieces of one resolution, parsed from the database only when a path needs them. */
class ResolutionContext {
  constructor(
    readonly deps: ResolutionDeps,
    readonly request: ResolutionRequest,
    readonly row: RouteConnectionRow,
    readonly definition: AnyIntegrationDefinition,
    readonly method: ConnectionMethod,
    readonly route: EgressRoute,
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

  /** The stored access token, refreshed first when it expires within `REFRESH_WINDOW_MS`. */
  async oauth2AccessToken(current: CurrentCredential) {
    const expiresAt = tokenExpiry(current);
    const now = this.deps.clock.now();
    if (expiresAt === null || expiresAt.getTime() - now.getTime() > REFRESH_WINDOW_MS) {
      return {
        value: accessTokenOf(current),
        expiresAt,
        credentialVersion: current.version,
        source: "oauth2-token",
      };
    }
    const refreshToken =
      current.credential.kind === "oauth2-token-set" ? current.credential.refreshToken : undefined;
    const oauth2 = this.definition.oauth2;
    if (refreshToken === undefined || oauth2 === undefined) {
      // Still usable for a few seconds: hand it out rather than fail early.
      if (expiresAt > now) {
        return {
          value: accessTokenOf(current),
          expiresAt,
          credentialVersion: current.version,
          source: "oauth2-token",
        };
      }
      return this.providerFailure(
        new OAuth2Error(
          "permanent",
          "no_refresh_token",
          "the access token has expired and the connection holds no refresh token",
        ),
      );
    }
    const target = this.targetWithSecrets();
    try {
      return await this.deps.db.transaction((tx) =>
        this.refreshUnderLock(tx, current, (token) =>
          oauth2.refresh({
            target,
            refreshToken: token,
            fetch: this.deps.fetch,
            clock: this.deps.clock,
          }),
        ),
      );
    } catch (error) {
      return this.providerFailure(error);
    }
  }

  /**
   * Refreshes with the connection row locked, so concurrent resolutions on any replica refresh
   * once (providers that rotate refresh tokens would revoke the loser's). A caller that waited
   * for the lock finds the new version and uses it instead of refreshing again.
   */
  private async refreshUnderLock(
    tx: Executor,
    seen: CurrentCredential,
    refresh: (refreshToken: string) => Promise<OAuth2TokenSet>,
  ) {
    const connection = this.row.connection;
    await tx
      .select({ id: integrationConnections.id })
      .from(integrationConnections)
      .where(eq(integrationConnections.id, connection.id))
      .for("update");
    const latest = await readCurrentCredential(tx, this.deps.keyRing, connection.id);
    if (
      latest &&
      latest.version !== seen.version &&
      latest.credential.kind === "oauth2-token-set"
    ) {
      return {
        value: latest.credential.accessToken,
        expiresAt: tokenExpiry(latest),
        credentialVersion: latest.version,
        source: "oauth2-token",
      };
    }
    const previous = seen.credential.kind === "oauth2-token-set" ? seen.credential : undefined;
    if (!previous?.refreshToken) throw new Error("refresh without a refresh token");
    const tokens = await refresh(previous.refreshToken);
    const now = this.deps.clock.now();
    // Providers that do not rotate refresh tokens omit one from the answer: keep the old one.
    const stored = tokenSetCredential({
      ...tokens,
      refreshToken: tokens.refreshToken ?? previous.refreshToken,
    });
    const version = await writeCredentialVersion(tx, this.deps.keyRing, {
      connectionId: connection.id,
      organizationId: connection.organizationId,
      credential: stored,
      expiresAt: tokens.expiresAt ?? null,
      now,
    });
    await publishInvalidation(tx, {
      type: "credential.rotated",
      connectionId: connection.id,
      credentialVersion: version,
    });
    await appendAudit(tx, this.deps.clock, {
      organizationId: connection.organizationId,
      actor: `gateway:${this.request.gatewayId}`,
      action: "connection.credential_refreshed",
      subjectType: "connection",
      subjectId: connection.id,
      traceId: this.request.requestId ?? null,
      details: { credentialVersion: version, sessionId: this.request.sessionId },
    });
    return {
      value: tokens.accessToken,
      expiresAt: tokens.expiresAt ?? null,
      credentialVersion: version,
      source: "oauth2-refresh",
    };
  }

  /**
   * OAuth2 client credentials: the stored fields hold the client secret, and each resolution
   * mints an access token from the token endpoint. Tokens are not stored; gateways cache them
   * until shortly before `expiresAt`, so the endpoint sees one request per gateway and expiry.
   */
  async clientCredentialsToken(current: CurrentCredential, fields: Record<string, string>) {
    const grant = this.definition.oauth2?.clientCredentials;
    if (!grant) throw refuse("credential_unavailable", "client_credentials_unsupported");
    const target = this.targetWithSecrets();
    try {
      const tokens = await grant({
        target,
        connection: this.connectionView(),
        secrets: fields,
        fetch: this.deps.fetch,
        clock: this.deps.clock,
      });
      return {
        value: tokens.accessToken,
        expiresAt: tokens.expiresAt ?? null,
        credentialVersion: current.version,
        source: "client-credentials",
      };
    } catch (error) {
      return this.providerFailure(error);
    }
  }

  /** A definition resolver (e.g. `github_app_installation_token`) computes the value. */
  async fromResolver(name: string) {
    const resolver = this.definition.credentialResolvers?.[name];
    if (!resolver) throw refuse("credential_unavailable", "unknown_resolver");
    if (this.row.bindingConfig === null)
      throw refuse("credential_unavailable", "binding_not_found");
    const binding = this.definition.bindingConfigSchema.safeParse(this.row.bindingConfig);
    if (!binding.success) throw refuse("credential_unavailable", "invalid_binding_config");
    const target = this.targetWithSecrets();
    try {
      const resolved = await resolver.resolve({
        target,
        connection: this.connectionView(),
        binding: { id: this.route.bindingId, config: binding.data },
        route: this.route,
        fetch: this.deps.fetch,
        clock: this.deps.clock,
      });
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
  private async providerFailure(error: unknown): Promise<never> {
    if (error instanceof ResolutionRefusal || error instanceof DecryptError) throw error;
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
    if (failure.kind === "permanent") await this.markConnectionError(failure);
    throw refuse("credential_unavailable", `provider_${failure.kind}:${failure.code}`);
  }

  private async markConnectionError(failure: OAuth2Error) {
    const { connection } = this.row;
    const now = this.deps.clock.now();
    await this.deps.db.transaction(async (tx) => {
      const [updated] = await tx
        .update(integrationConnections)
        .set({ status: "error", lastError: failure.message.slice(0, 500), updatedAt: now })
        .where(
          and(
            eq(integrationConnections.id, connection.id),
            eq(integrationConnections.status, "active"),
          ),
        )
        .returning({ id: integrationConnections.id });
      if (!updated) return;
      await publishInvalidation(tx, { type: "connection.updated", connectionId: connection.id });
      await appendAudit(tx, this.deps.clock, {
        organizationId: connection.organizationId,
        actor: `gateway:${this.request.gatewayId}`,
        action: "connection.error",
        subjectType: "connection",
        subjectId: connection.id,
        traceId: this.request.requestId ?? null,
        details: { code: failure.code, sessionId: this.request.sessionId },
      });
    });
  }
}

function tokenExpiry(current: CurrentCredential): Date | null {
  if (current.expiresAt) return current.expiresAt;
  if (current.credential.kind === "oauth2-token-set" && current.credential.expiresAt) {
    const parsed = new Date(current.credential.expiresAt);
    return Number.isNaN(parsed.getTime()) ? null : parsed;
  }
  return null;
}

function accessTokenOf(current: CurrentCredential): string {
  if (current.credential.kind !== "oauth2-token-set") throw new Error("not a token set");
  return current.credential.accessToken;
}
