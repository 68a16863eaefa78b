import {
  connectionCredentials,
  type Executor,
  integrationConnections,
  integrationTargets,
  newId,
} from "@keyway/db";
import {
  type AnyIntegrationDefinition,
  type ConnectionMethod,
  type ConnectionMethodKind,
  type ConnectionView,
  OAuth2Error,
  type TargetView,
  TEXT_ISSUE_CODE,
  textViolation,
} from "@keyway/integrations-core";
import { and, asc, eq, isNull, type SQL } from "drizzle-orm";
import { appendAudit } from "../audit/service";
import type { OrganizationPrincipal } from "../auth/principal";
import { createCredentialCache, dropCachedCredentials } from "../credentials/credential-cache";
import type { OAuth2Tokens } from "../credentials/oauth2-tokens";
import {
  readCurrentCredential,
  type StoredCredential,
  writeCredentialVersion,
} from "../credentials/secret-store";
import type { AppDeps } from "../deps";
import {
  badRequest,
  conflict,
  DomainError,
  type FieldIssue,
  notFound,
  unprocessable,
} from "../errors";
import { publishInvalidation } from "../events/invalidations";
import {
  loadTargetForUse,
  type TargetRef,
  type TargetRow,
  type UsableTarget,
} from "../targets/service";
import { fieldIssuesAt } from "../targets/target-config";
import type { ConnectionResponse, CreateConnectionInput, UpdateConnectionInput } from "./schemas";

/**
 * Connections (SPEC §2 Connection, §6.2): an organization's authenticated relationship to an
 * enabled target. This module creates API-key connections; OAuth2 and GitHub App connections
 * are created by their own flows and share everything else here (get, update, revoke, test).
 *
 * Secrets are write-only: they enter through `createConnection` and `rotateConnectionSecret`,
 * are encrypted by the secret store, and leave only towards the provider (`testConnection`,
 * `listConnectionResources`). Nothing returned or thrown here carries a secret value.
 */

export type ConnectionDeps = Pick<AppDeps, "database" | "registry" | "keyRing" | "clock" | "fetch">;

type ConnectionRow = typeof integrationConnections.$inferSelect;

// ----- the credential an action uses --------------------------------------------------------

/**
 * The single credential value a provider call uses, taken from a stored credential version:
 * - `secret-fields` of an `api-key` method: the method's FIRST secret field (`apiKey`, `token`,
 *   `botToken`, ...). Definitions list the field that is the credential first; a method with
 *   further fields (none in v1) reads them from its config or a resolver, not from here.
 * - `oauth2-token-set`: the access token.
 * Anything else (client-credentials secrets, which must be exchanged for a token first; GitHub
 * App installations, whose tokens are minted per use: `usableConnection`, the route resolver)
 * has no direct value: `undefined`.
 * Credential resolution for gateways uses the same mapping, so a test checks what a route injects.
 */
export function credentialValueOf(
  method: Pick<ConnectionMethod, "kind" | "secretFields">,
  stored: StoredCredential,
): string | undefined {
  if (stored.kind === "oauth2-token-set") return stored.accessToken;
  if (method.kind !== "api-key") return undefined;
  const field = method.secretFields?.[0];
  return field === undefined ? undefined : stored.fields[field];
}

// ----- targets --------------------------------------------------------------------------------

/**
 * The target a connection is made to or used with: it must exist, be enabled and have a valid
 * config. A target is something the request refers to, so a missing one is 422
 * `target_not_found` here, not the 404 the targets module gives for its own routes.
 */
export async function usableTarget(deps: ConnectionDeps, ref: TargetRef): Promise<UsableTarget> {
  try {
    return await loadTargetForUse(deps.database.db, deps, ref);
  } catch (error) {
    if (error instanceof DomainError && error.kind === "not_found") {
      const name = "targetKey" in ref ? ref.targetKey : ref.id;
      throw unprocessable("target_not_found", `no usable target ${name}`);
    }
    throw error;
  }
}

/** The definition of a target whatever its state (updates and rotations work on disabled targets). */
function definitionOf(deps: ConnectionDeps, target: TargetRow): AnyIntegrationDefinition {
  const definition = deps.registry.get(target.variantId);
  if (!definition) {
    throw unprocessable(
      "target_not_found",
      `target ${target.targetKey} uses ${target.variantId}, which this deployment does not know`,
    );
  }
  return definition;
}

export function methodOf(definition: AnyIntegrationDefinition, methodId: string): ConnectionMethod {
  const method = definition.connectionMethods.find((m) => m.id === methodId);
  if (!method) {
    throw unprocessable(
      "method_not_found",
      `${definition.variantId} has no connection method ${methodId}`,
      { methods: definition.connectionMethods.map((m) => m.id) },
    );
  }
  return method;
}

// ----- input checks ---------------------------------------------------------------------------

/**
 * Secret inputs must name exactly the method's secret fields, and each value must be a
 * `credential` text (printable ASCII on one line): every connection secret is sent in HTTP —
 * injected into a header or query by the gateway, or sent to a token endpoint — where a control
 * character would be refused (or split the header) only when the secret is first used. Issues
 * name fields, never values.
 */
function secretFieldIssues(
  method: ConnectionMethod,
  secrets: Record<string, string>,
): FieldIssue[] {
  const expected = method.secretFields ?? [];
  const issues: FieldIssue[] = [];
  for (const field of expected) {
    const value = secrets[field];
    if (value === undefined || !Object.hasOwn(secrets, field)) {
      issues.push({
        field: `secrets.${field}`,
        code: "missing_secret_field",
        message: `method ${method.id} needs the secret field ${field}`,
      });
      continue;
    }
    const violation = textViolation(value, "credential");
    if (violation !== undefined) {
      issues.push({ field: `secrets.${field}`, code: TEXT_ISSUE_CODE, message: violation });
    }
  }
  for (const field of Object.keys(secrets)) {
    if (!expected.includes(field)) {
      issues.push({
        field: `secrets.${field}`,
        code: "unknown_secret_field",
        message: `method ${method.id} takes the secret fields: ${expected.join(", ") || "none"}`,
      });
    }
  }
  return issues;
}

/**
 * Checks connection config against the method's schema. The stored value is the caller's input,
 * not the schema's output, because the compiler parses stored config again with the same schema
 * and a transformed output need not parse a second time.
 */
function connectionConfigIssues(
  method: ConnectionMethod,
  config: Record<string, unknown> | undefined,
): { config: Record<string, unknown>; issues: FieldIssue[] } {
  const input = config ?? {};
  if (!method.configSchema) {
    const issues: FieldIssue[] =
      Object.keys(input).length === 0
        ? []
        : [
            {
              field: "config",
              code: "unexpected_config",
              message: `method ${method.id} takes no config`,
            },
          ];
    return { config: {}, issues };
  }
  const parsed = method.configSchema.safeParse(input);
  if (parsed.success) return { config: input, issues: [] };
  return { config: input, issues: fieldIssuesAt("config", parsed.error.issues) };
}

function throwIfIssues(issues: FieldIssue[]): void {
  if (issues.length > 0) {
    throw badRequest("invalid_request", "the request does not match the expected shape", issues);
  }
}

/** Where a connection of a method that cannot be created from secret inputs is made instead. */
const FLOW_BY_KIND: Partial<Record<ConnectionMethodKind, string>> = {
  "oauth2-authorization-code": "POST /v1/integration/connections/oauth2/start",
  "github-app-installation": "POST /v1/integration/connections/github-app/start",
};

// ----- reading --------------------------------------------------------------------------------

/**
 * Connections with their target's key and variant and their current credential's kind and
 * expiry (a left join: a connection may have no credential, e.g. a GitHub App installation).
 */
async function selectConnections(executor: Executor, where: SQL | undefined) {
  return executor
    .select({
      connection: integrationConnections,
      targetKey: integrationTargets.targetKey,
      variantId: integrationTargets.variantId,
      credentialKind: connectionCredentials.kind,
      credentialExpiresAt: connectionCredentials.expiresAt,
    })
    .from(integrationConnections)
    .innerJoin(integrationTargets, eq(integrationTargets.id, integrationConnections.targetId))
    .leftJoin(
      connectionCredentials,
      and(
        eq(connectionCredentials.connectionId, integrationConnections.id),
        isNull(connectionCredentials.supersededAt),
      ),
    )
    .where(where)
    .orderBy(asc(integrationConnections.id));
}

type SelectedConnection = Awaited<ReturnType<typeof selectConnections>>[number];

function toConnection(deps: ConnectionDeps, row: SelectedConnection): ConnectionResponse {
  const c = row.connection;
  // Secret-fields credentials hold exactly the method's secret fields (create and rotate check
  // that), so the names come from the definition and the ciphertext stays closed.
  const method = deps.registry
    .get(row.variantId)
    ?.connectionMethods.find((m) => m.id === c.methodId);
  const secretFields =
    row.credentialKind === "secret-fields" ? [...(method?.secretFields ?? [])] : [];
  return {
    id: c.id,
    targetKey: row.targetKey,
    variantId: row.variantId,
    methodId: c.methodId,
    methodKind: c.methodKind,
    displayName: c.displayName,
    status: c.status,
    config: c.config,
    externalSubjectId: c.externalSubjectId,
    credentialVersion: c.credentialVersion,
    credentialExpiresAt: row.credentialExpiresAt?.toISOString() ?? null,
    lastError: c.lastError,
    secretFields,
    createdAt: c.createdAt.toISOString(),
    updatedAt: c.updatedAt.toISOString(),
  };
}

export async function listConnections(
  deps: ConnectionDeps,
  organizationId: string,
  filter: { targetKey?: string | undefined; status?: ConnectionRow["status"] | undefined },
): Promise<ConnectionResponse[]> {
  const rows = await selectConnections(
    deps.database.db,
    and(
      eq(integrationConnections.organizationId, organizationId),
      filter.targetKey !== undefined
        ? eq(integrationTargets.targetKey, filter.targetKey)
        : undefined,
      filter.status !== undefined ? eq(integrationConnections.status, filter.status) : undefined,
    ),
  );
  return rows.map((row) => toConnection(deps, row));
}

export async function getConnection(
  deps: ConnectionDeps,
  organizationId: string,
  id: string,
  executor: Executor = deps.database.db,
): Promise<ConnectionResponse> {
  const [row] = await selectConnections(
    executor,
    and(
      eq(integrationConnections.id, id),
      eq(integrationConnections.organizationId, organizationId),
    ),
  );
  if (!row) throw notFound("connection");
  return toConnection(deps, row);
}

/**
 * The connection and its target, scoped to the organization (another org's id is a 404 like a
 * missing one). With `lock`, the connection row is locked for the rest of the transaction so a
 * concurrent revoke cannot slip between the status check and the write.
 */
export async function loadConnection(
  executor: Executor,
  organizationId: string,
  id: string,
  options: { lock?: boolean } = {},
): Promise<{ connection: ConnectionRow; target: TargetRow }> {
  const query = executor
    .select({ connection: integrationConnections, target: integrationTargets })
    .from(integrationConnections)
    .innerJoin(integrationTargets, eq(integrationTargets.id, integrationConnections.targetId))
    .where(
      and(
        eq(integrationConnections.id, id),
        eq(integrationConnections.organizationId, organizationId),
      ),
    );
  const [row] = options.lock
    ? await query.for("update", { of: integrationConnections })
    : await query;
  if (!row) throw notFound("connection");
  return row;
}

export function requireNotRevoked(connection: ConnectionRow, action: string): void {
  if (connection.status === "revoked") {
    throw conflict(
      "connection_revoked",
      `connection ${connection.id} is revoked; cannot ${action}`,
    );
  }
}

// ----- writing --------------------------------------------------------------------------------

/**
 * Creates a connection from secret inputs (API-key and OAuth2 client-credentials methods).
 * Checks, in order: the target exists and is enabled, the method exists and takes secret inputs
 * (422s: references), then the secret field names and config (400 with field issues). A
 * client-credentials connection then asks the token endpoint for one token, so a client the
 * server refuses is never stored (422 `client_credentials_rejected`; 502 when the server is
 * unreachable or failing). The connection, its first credential version and the audit entry
 * commit together.
 */
export async function createConnection(
  deps: ConnectionDeps,
  principal: OrganizationPrincipal,
  input: CreateConnectionInput,
): Promise<ConnectionResponse> {
  const { db } = deps.database;
  const target = await usableTarget(deps, { targetKey: input.targetKey });
  const { definition } = target;
  const method = methodOf(definition, input.methodId);
  if (method.kind !== "api-key" && method.kind !== "oauth2-client-credentials") {
    const flow = FLOW_BY_KIND[method.kind];
    throw unprocessable(
      "method_not_supported_here",
      `method ${method.id} is a ${method.kind} method; this endpoint creates API-key connections` +
        (flow ? `, use ${flow}` : ""),
      { methodKind: method.kind, ...(flow ? { flow } : {}) },
    );
  }
  const config = connectionConfigIssues(method, input.config);
  throwIfIssues([...secretFieldIssues(method, input.secrets), ...config.issues]);

  const now = deps.clock.now();
  const id = newId("connection", now);
  if (method.kind === "oauth2-client-credentials") {
    await proveClientCredentials(deps, {
      definition,
      target: { ...target.view, secrets: target.secrets() },
      connection: {
        id,
        methodId: method.id,
        methodKind: method.kind,
        config: method.configSchema ? method.configSchema.parse(config.config) : {},
      },
      secrets: input.secrets,
    });
  }
  return db.transaction(async (tx) => {
    await tx.insert(integrationConnections).values({
      id,
      organizationId: principal.organizationId,
      targetId: target.row.id,
      methodId: method.id,
      methodKind: method.kind,
      displayName: input.displayName,
      status: "active",
      config: config.config,
      credentialVersion: 0,
      createdBy: principal.actor,
      createdAt: now,
      updatedAt: now,
    });
    const credentialVersion = await writeCredentialVersion(tx, deps.keyRing, {
      connectionId: id,
      organizationId: principal.organizationId,
      credential: { kind: "secret-fields", fields: input.secrets },
      now,
    });
    await appendAudit(tx, deps.clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "connection.created",
      subjectType: "connection",
      subjectId: id,
      details: {
        targetKey: target.row.targetKey,
        methodId: method.id,
        methodKind: method.kind,
        credentialVersion,
      },
    });
    return getConnection(deps, principal.organizationId, id, tx);
  });
}

/**
 * Asks the token endpoint for one client-credentials token with the new connection's client.
 * The token is not kept: resolution mints and caches its own (`internal/oauth2-tokens.ts`).
 */
async function proveClientCredentials(
  deps: ConnectionDeps,
  input: {
    definition: AnyIntegrationDefinition;
    target: TargetView<unknown> & { secrets: unknown };
    connection: ConnectionView<unknown>;
    secrets: Record<string, string>;
  },
): Promise<void> {
  const grant = input.definition.oauth2?.clientCredentials;
  if (!grant) {
    throw unprocessable(
      "method_not_supported_here",
      `${input.definition.variantId} cannot use the client credentials grant`,
    );
  }
  try {
    await grant({
      target: input.target,
      connection: input.connection,
      secrets: input.secrets,
      fetch: deps.fetch,
      clock: deps.clock,
    });
  } catch (error) {
    if (!(error instanceof OAuth2Error)) throw error;
    // The target names no token endpoint: the operator's to fix, not the client's.
    if (error.code === "client_not_configured") {
      throw unprocessable("oauth2_client_not_configured", error.message);
    }
    if (error.kind === "permanent") {
      throw unprocessable(
        "client_credentials_rejected",
        `the token endpoint refused this client: ${error.message}`,
        { providerError: error.code },
      );
    }
    throw new DomainError("bad_gateway", "provider_request_failed", error.message, {
      providerError: error.code,
    });
  }
}

/** Renames a connection or replaces its config (checked again by the method's schema). */
export async function updateConnection(
  deps: ConnectionDeps,
  principal: OrganizationPrincipal,
  id: string,
  input: UpdateConnectionInput,
): Promise<ConnectionResponse> {
  return deps.database.db.transaction(async (tx) => {
    const { connection, target } = await loadConnection(tx, principal.organizationId, id, {
      lock: true,
    });
    requireNotRevoked(connection, "update it");
    const changes: Partial<ConnectionRow> = { updatedAt: deps.clock.now() };
    if (input.displayName !== undefined) changes.displayName = input.displayName;
    if (input.config !== undefined) {
      const method = methodOf(definitionOf(deps, target), connection.methodId);
      const config = connectionConfigIssues(method, input.config);
      throwIfIssues(config.issues);
      changes.config = config.config;
    }
    await tx.update(integrationConnections).set(changes).where(eq(integrationConnections.id, id));
    await appendAudit(tx, deps.clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "connection.updated",
      subjectType: "connection",
      subjectId: id,
      details: { fields: Object.keys(input).sort() },
    });
    // Gateways cache what compiled plans and resolvers derived from the connection's config.
    await publishInvalidation(tx, { type: "connection.updated", connectionId: id });
    return getConnection(deps, principal.organizationId, id, tx);
  });
}

/**
 * Stores new secret inputs as the next credential version; the previous one is superseded and
 * gateways drop cached values of the old one. A connection in `error` becomes `active` again:
 * the new secret is the user's fix for whatever failed.
 */
export async function rotateConnectionSecret(
  deps: ConnectionDeps,
  principal: OrganizationPrincipal,
  id: string,
  secrets: Record<string, string>,
): Promise<ConnectionResponse> {
  return deps.database.db.transaction(async (tx) => {
    const { connection, target } = await loadConnection(tx, principal.organizationId, id, {
      lock: true,
    });
    requireNotRevoked(connection, "rotate its secret");
    const method = methodOf(definitionOf(deps, target), connection.methodId);
    if ((method.secretFields ?? []).length === 0) {
      throw unprocessable(
        "method_not_supported_here",
        `method ${method.id} has no secret fields to rotate; reconnect through its own flow`,
        { methodKind: method.kind },
      );
    }
    throwIfIssues(secretFieldIssues(method, secrets));
    const now = deps.clock.now();
    const credentialVersion = await writeCredentialVersion(tx, deps.keyRing, {
      connectionId: id,
      organizationId: principal.organizationId,
      credential: { kind: "secret-fields", fields: secrets },
      now,
    });
    if (connection.status === "error") {
      await tx
        .update(integrationConnections)
        .set({ status: "active", lastError: null })
        .where(eq(integrationConnections.id, id));
    }
    await appendAudit(tx, deps.clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "connection.secret_rotated",
      subjectType: "connection",
      subjectId: id,
      details: { credentialVersion },
    });
    await publishInvalidation(tx, {
      type: "credential.rotated",
      connectionId: id,
      credentialVersion,
    });
    return getConnection(deps, principal.organizationId, id, tx);
  });
}

/**
 * Revokes a connection. The row stays (bindings of existing profile versions refer to it, and
 * compiling them must report `connection_not_active` rather than a missing row); its credential
 * versions are deleted, because a revoked connection is never used again and a secret nobody can
 * use is only a liability. Revoking a revoked connection changes nothing.
 */
export async function revokeConnection(
  deps: ConnectionDeps,
  principal: OrganizationPrincipal,
  id: string,
): Promise<void> {
  await deps.database.db.transaction(async (tx) => {
    const { connection } = await loadConnection(tx, principal.organizationId, id, { lock: true });
    if (connection.status === "revoked") return;
    await tx
      .update(integrationConnections)
      .set({ status: "revoked", updatedAt: deps.clock.now() })
      .where(eq(integrationConnections.id, id));
    await tx.delete(connectionCredentials).where(eq(connectionCredentials.connectionId, id));
    await dropCachedCredentials(tx, id);
    await appendAudit(tx, deps.clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "connection.revoked",
      subjectType: "connection",
      subjectId: id,
      details: { previousStatus: connection.status },
    });
    await publishInvalidation(tx, { type: "connection.revoked", connectionId: id });
  });
}

// ----- using the credential -------------------------------------------------------------------

interface UsableConnection {
  definition: AnyIntegrationDefinition;
  target: TargetView<unknown>;
  /** The target's secrets, decrypted only when a provider call needs the operator's client. */
  targetSecrets(): unknown;
  connection: ConnectionView<unknown>;
  /** Reads and decrypts the current credential only when the caller is about to use it. */
  credential(): Promise<string>;
}

/**
 * Everything a provider call on behalf of a connection needs: the connection is live, its target
 * enabled, its config valid. The credential is decrypted last, after every refusal.
 */
async function usableConnection(
  deps: ConnectionDeps,
  organizationId: string,
  id: string,
  action: string,
): Promise<UsableConnection> {
  const { db } = deps.database;
  const { connection } = await loadConnection(db, organizationId, id);
  requireNotRevoked(connection, action);
  const target = await usableTarget(deps, { id: connection.targetId });
  const { definition } = target;
  const method = methodOf(definition, connection.methodId);
  const config = method.configSchema ? method.configSchema.safeParse(connection.config) : null;
  if (config && !config.success) {
    throw unprocessable(
      "invalid_connection_config",
      `connection ${id} has an invalid config; update it first`,
    );
  }
  const view: ConnectionView<unknown> = {
    id: connection.id,
    methodId: connection.methodId,
    methodKind: connection.methodKind,
    config: config ? config.data : {},
    ...(connection.externalSubjectId !== null
      ? { externalSubjectId: connection.externalSubjectId }
      : {}),
  };
  return {
    definition,
    target: target.view,
    targetSecrets: () => target.secrets(),
    connection: view,
    async credential() {
      const installation = definition.appInstallation;
      if (method.kind === "github-app-installation" && installation !== undefined) {
        // No stored secret: the installation's own token, minted with the app's key and shared
        // with later tests and listings until near its expiry.
        const minting = installation.connectionCredential;
        const ctx = {
          target: { ...target.view, secrets: target.secrets() },
          connection: view,
          fetch: deps.fetch,
          clock: deps.clock,
        };
        const minted =
          minting.cacheScope === undefined
            ? await minting.resolve(ctx)
            : await createCredentialCache({
                database: deps.database,
                keyRing: deps.keyRing,
                clock: deps.clock,
              }).obtain(
                {
                  connectionId: id,
                  organizationId,
                  resolver: "app_installation",
                  scope: minting.cacheScope(ctx),
                },
                () => minting.resolve(ctx),
              );
        return minted.value;
      }
      const current = await readCurrentCredential(db, deps.keyRing, id);
      const value = current && credentialValueOf(method, current.credential);
      if (value === undefined) {
        throw unprocessable(
          "credential_not_available",
          `connection ${id} has no stored credential that can be used directly`,
        );
      }
      return value;
    },
  };
}

/**
 * Checks the connection's credential against the provider, for every method:
 * - API key: the definition's credential test (`ok: null` when it has none);
 * - OAuth2 client credentials: a token from the token endpoint, then the credential test;
 * - OAuth2 authorization code: the access token, refreshed first when near expiry (as credential
 *   resolution does, with the same single-flight), then the credential test; without one, a
 *   token obtained from the token endpoint just now is `ok: true`.
 * A failed test leaves `status` and `lastError` alone, because one failed call (a provider outage,
 * a rate limit) is not proof that the credential is bad — except a refresh the provider refused
 * for good, which marks the connection `error` exactly as credential resolution would.
 * Each test is audited: it sends the secret out of the vault.
 */
export async function testConnection(
  deps: ConnectionDeps,
  principal: OrganizationPrincipal,
  id: string,
  tokens: OAuth2Tokens,
): Promise<{ ok: boolean | null; message: string }> {
  const usable = await usableConnection(deps, principal.organizationId, id, "test it");
  const credentialTest = usable.definition.credentialTest;
  let result: { ok: boolean | null; message: string };
  try {
    const { credential, issuedNow } = await credentialForTest(deps, usable, principal, tokens);
    if (credentialTest) {
      result = await credentialTest.test({
        target: usable.target,
        connection: usable.connection,
        credential,
        fetch: deps.fetch,
      });
    } else if (issuedNow) {
      result = { ok: true, message: "the token endpoint issued an access token" };
    } else {
      result = { ok: null, message: "this provider has no credential test" };
    }
  } catch (error) {
    // Definitions report provider failures as OAuth2Error with a caller-safe message.
    if (!(error instanceof OAuth2Error)) throw error;
    result = { ok: false, message: error.message };
  }
  await appendAudit(deps.database.db, deps.clock, {
    organizationId: principal.organizationId,
    actor: principal.actor,
    action: "connection.tested",
    subjectType: "connection",
    subjectId: id,
    details: { ok: result.ok },
  });
  return { ok: result.ok, message: result.message };
}

/** The value a test sends, and whether it came from the token endpoint during this test. */
async function credentialForTest(
  deps: ConnectionDeps,
  usable: UsableConnection,
  principal: OrganizationPrincipal,
  tokens: OAuth2Tokens,
): Promise<{ credential: string; issuedNow: boolean }> {
  const { definition, connection } = usable;
  const oauth2 = definition.oauth2;
  if (connection.methodKind === "oauth2-client-credentials" && oauth2?.clientCredentials) {
    const current = await readCurrentCredential(deps.database.db, deps.keyRing, connection.id);
    if (current?.credential.kind !== "secret-fields") {
      throw unprocessable(
        "credential_not_available",
        `connection ${connection.id} has no client secret`,
      );
    }
    const issued = await oauth2.clientCredentials({
      target: { ...usable.target, secrets: usable.targetSecrets() },
      connection,
      secrets: current.credential.fields,
      fetch: deps.fetch,
      clock: deps.clock,
    });
    return { credential: issued.accessToken, issuedNow: true };
  }
  if (connection.methodKind === "oauth2-authorization-code") {
    const target = { ...usable.target, secrets: usable.targetSecrets() };
    const issued = await tokens.accessToken(
      { id: connection.id, organizationId: principal.organizationId },
      oauth2
        ? (refreshToken, fetch) =>
            oauth2.refresh({ target, refreshToken, fetch, clock: deps.clock })
        : undefined,
      { db: deps.database.db, actor: principal.actor },
    );
    return { credential: issued.value, issuedNow: issued.source === "oauth2-refresh" };
  }
  return { credential: await usable.credential(), issuedNow: false };
}

/** Lists provider resources (e.g. repositories) the connection reaches, for binding pickers. */
export async function listConnectionResources(
  deps: ConnectionDeps,
  principal: OrganizationPrincipal,
  id: string,
  kind: string,
): Promise<{ items: { id: string; label: string }[] }> {
  const usable = await usableConnection(deps, principal.organizationId, id, "list its resources");
  const resources = usable.definition.resources;
  if (!resources?.kinds.includes(kind)) {
    throw unprocessable(
      "resources_not_supported",
      resources
        ? `${usable.definition.variantId} cannot list ${kind}`
        : `${usable.definition.variantId} lists no resources`,
      { kinds: [...(resources?.kinds ?? [])] },
    );
  }
  try {
    const items = await resources.list({
      kind,
      target: usable.target,
      connection: usable.connection,
      credential: await usable.credential(),
      fetch: deps.fetch,
    });
    return { items: items.map((item) => ({ id: item.id, label: item.label })) };
  } catch (error) {
    if (error instanceof OAuth2Error) {
      throw new DomainError("bad_gateway", "provider_request_failed", error.message);
    }
    throw error;
  }
}
