import { type Executor, integrationConnections, newId, oauthSessions } from "@keyway/db";
import {
  createOAuthState,
  createPkcePair,
  type FetchLike,
  hashOAuthState,
  OAuth2Error,
  type OAuth2TokenSet,
} from "@keyway/integrations-core";
import { and, eq, gt, isNull, ne } from "drizzle-orm";
import { appendAudit } from "../audit/service";
import type { OrganizationPrincipal } from "../auth/principal";
import {
  decryptPkceVerifier,
  encryptPkceVerifier,
  tokenSetCredential,
  writeCredentialVersion,
} from "../credentials/secret-store";
import type { AppDeps } from "../deps";
import { conflict, DomainError, notFound, unprocessable } from "../errors";
import { publishInvalidation } from "../events/invalidations";
import { isAllowedRedirect } from "./redirect-after";
import type { ConnectionResponse, StartOAuth2Input } from "./schemas";
import {
  type ConnectionDeps,
  getConnection,
  loadConnection,
  methodOf,
  requireNotRevoked,
  usableTarget,
} from "./service";

/**
 * The OAuth2 authorization code flow with PKCE S256 (SPEC §6.2, §6.4): `start` records a flow and
 * returns the provider's authorization URL; the provider sends the browser to the public
 * callback, which completes the flow once.
 *
 * What the flow is bound to: the `oauth_sessions` row holds the organization, the principal, the
 * target and method (and the connection when reconnecting), never taken from the callback's
 * query. Only the SHA-256 of the `state` is stored, so a database reader cannot complete a flow;
 * the PKCE verifier is encrypted to the row. A flow is single-use (claimed by one conditional
 * UPDATE) and lives 10 minutes. Every refusal at the callback is audited, and none of them writes
 * anything else: the code is exchanged before any connection row is touched, and the connection,
 * its credential version and its audit entry commit together.
 */

export const OAUTH2_CALLBACK_PATH = "/v1/integration/connections/oauth2/callback";
export const OAUTH2_FLOW_TTL_MS = 10 * 60_000;

export type OAuth2FlowDeps = ConnectionDeps & { settings: AppDeps["settings"] };

type FlowRow = typeof oauthSessions.$inferSelect;

/** The callback URL registered with providers: `api.public_url` + the callback path. */
export function oauth2CallbackUrl(publicUrl: string): string {
  return `${publicUrl.replace(/\/+$/, "")}${OAUTH2_CALLBACK_PATH}`;
}

/** A callback refusal; `redirectAfter` is set when the flow is known and names one. */
export class OAuth2CallbackRefusal extends DomainError {
  constructor(
    error: DomainError,
    readonly redirectAfter: string | null,
  ) {
    super(error.kind, error.code, error.message, error.details);
  }
}

// ----- start ----------------------------------------------------------------------------------

export async function startOAuth2Flow(
  deps: OAuth2FlowDeps,
  principal: OrganizationPrincipal,
  input: StartOAuth2Input,
): Promise<{ authorizationUrl: string; expiresAt: string }> {
  const { db } = deps.database;
  const target = await usableTarget(deps, { targetKey: input.targetKey });
  const { definition } = target;
  const method = methodOf(definition, input.methodId);
  const oauth2 = definition.oauth2;
  if (method.kind !== "oauth2-authorization-code" || !oauth2) {
    throw unprocessable(
      "method_not_supported_here",
      `method ${method.id} is a ${method.kind} method; this endpoint starts OAuth2 authorization code flows`,
      { methodKind: method.kind },
    );
  }
  if (input.redirectAfter !== undefined && !isAllowedRedirect(deps.settings, input.redirectAfter)) {
    await appendAudit(db, deps.clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "connection.oauth2_refused",
      subjectType: "integration_target",
      subjectId: target.row.id,
      details: { reason: "redirect_not_allowed", targetKey: target.row.targetKey },
    });
    throw unprocessable(
      "redirect_not_allowed",
      "redirectAfter must be on this API's origin or an origin in api.allowed_redirect_origins",
    );
  }
  if (input.connectionId !== undefined) {
    // Another organization's connection is answered like an unknown one (404), and audited: a
    // flow must never be able to re-authorise a connection outside the principal's organization.
    const { connection } = await loadConnection(
      db,
      principal.organizationId,
      input.connectionId,
    ).catch(async (error: unknown) => {
      if (error instanceof DomainError && error.kind === "not_found") {
        await appendAudit(db, deps.clock, {
          organizationId: principal.organizationId,
          actor: principal.actor,
          action: "connection.oauth2_refused",
          subjectType: "integration_target",
          subjectId: target.row.id,
          details: { reason: "connection_not_found", connectionId: input.connectionId },
        });
      }
      throw error;
    });
    requireNotRevoked(connection, "reconnect it");
    if (connection.targetId !== target.row.id || connection.methodId !== method.id) {
      throw unprocessable(
        "method_not_supported_here",
        `connection ${connection.id} does not use ${target.row.targetKey} with method ${method.id}`,
      );
    }
  }

  const now = deps.clock.now();
  const id = newId("oauthSession", now);
  const state = createOAuthState();
  const pkce = createPkcePair();
  const redirectUri = oauth2CallbackUrl(deps.settings.publicUrl);
  let authorizationUrl: string;
  try {
    authorizationUrl = oauth2.authorizationUrl({
      target: { ...target.view, secrets: target.secrets() },
      redirectUri,
      state,
      codeChallenge: pkce.challenge,
      ...(input.scopes !== undefined ? { scopes: input.scopes } : {}),
    });
  } catch (error) {
    if (!(error instanceof OAuth2Error)) throw error;
    throw unprocessable("oauth2_client_not_configured", error.message);
  }
  const expiresAt = new Date(now.getTime() + OAUTH2_FLOW_TTL_MS);
  await db.transaction(async (tx) => {
    await tx.insert(oauthSessions).values({
      id,
      organizationId: principal.organizationId,
      principal: principal.actor,
      targetId: target.row.id,
      flow: "oauth2",
      methodId: method.id,
      stateHash: hashOAuthState(state),
      pkceVerifierCiphertext: encryptPkceVerifier(deps.keyRing, id, pkce.verifier),
      redirectUri,
      connectionId: input.connectionId ?? null,
      displayName: input.displayName,
      scopes: input.scopes ?? null,
      redirectAfter: input.redirectAfter ?? null,
      expiresAt,
      createdAt: now,
    });
    await appendAudit(tx, deps.clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "connection.oauth2_started",
      subjectType: "oauth_session",
      subjectId: id,
      details: {
        targetKey: target.row.targetKey,
        methodId: method.id,
        connectionId: input.connectionId ?? null,
      },
    });
  });
  return { authorizationUrl, expiresAt: expiresAt.toISOString() };
}

// ----- callback -------------------------------------------------------------------------------

export interface OAuth2CallbackQuery {
  state: string;
  code?: string | undefined;
  error?: string | undefined;
}

export interface CompletedOAuth2Flow {
  connection: ConnectionResponse;
  reconnected: boolean;
  redirectAfter: string | null;
}

/**
 * Completes a flow: claims it (unknown, expired or used → 422 `oauth2_state_invalid`), stops at
 * a provider error (`oauth2_authorization_denied`), exchanges the code with the stored verifier
 * (`oauth2_code_rejected` when the token endpoint refuses it), then creates the connection or
 * reconnects one: the flow's own connection, or else the organization's connection to the same
 * provider account (`externalSubjectId`) on the same target and method, which keeps its id and
 * bindings and becomes `active` again.
 */
export async function completeOAuth2Flow(
  deps: OAuth2FlowDeps,
  query: OAuth2CallbackQuery,
  requestId: string | undefined,
): Promise<CompletedOAuth2Flow> {
  const { db } = deps.database;
  const now = deps.clock.now();
  const hash = hashOAuthState(query.state);
  const [flow] = await db
    .update(oauthSessions)
    .set({ usedAt: now })
    .where(
      and(
        eq(oauthSessions.stateHash, hash),
        eq(oauthSessions.flow, "oauth2"),
        isNull(oauthSessions.usedAt),
        gt(oauthSessions.expiresAt, now),
      ),
    )
    .returning();

  const refuse = async (
    error: DomainError,
    facts: { flow?: FlowRow; reason: string; providerError?: string },
  ): Promise<never> => {
    await appendAudit(db, deps.clock, {
      organizationId: facts.flow?.organizationId ?? null,
      actor: facts.flow?.principal ?? "oauth2-callback",
      action: "connection.oauth2_refused",
      subjectType: "oauth_session",
      subjectId: facts.flow?.id ?? "unknown",
      traceId: requestId ?? null,
      details: {
        reason: facts.reason,
        ...(facts.providerError !== undefined ? { providerError: facts.providerError } : {}),
      },
    });
    throw new OAuth2CallbackRefusal(error, facts.flow?.redirectAfter ?? null);
  };

  if (!flow) {
    const [known] = await db.select().from(oauthSessions).where(eq(oauthSessions.stateHash, hash));
    const reason = known?.flow !== "oauth2" ? "unknown" : known.usedAt ? "used" : "expired";
    // A known flow is named in the audit entry, but the browser never goes back to its
    // redirectAfter: whoever holds a spent state is not necessarily the one who started it.
    return refuse(
      unprocessable("oauth2_state_invalid", stateMessage(reason), { reason }),
      known ? { flow: { ...known, redirectAfter: null }, reason } : { reason },
    );
  }

  if (query.error !== undefined) {
    const providerError = query.error.slice(0, 100);
    return refuse(
      unprocessable(
        "oauth2_authorization_denied",
        `the provider did not authorise the connection: ${providerError}`,
        { providerError },
      ),
      { flow, reason: "provider_error", providerError },
    );
  }
  if (query.code === undefined) {
    return refuse(unprocessable("oauth2_code_rejected", "the callback carries no code"), {
      flow,
      reason: "missing_code",
    });
  }

  let target: Awaited<ReturnType<typeof usableTarget>>;
  try {
    target = await usableTarget(deps, { id: flow.targetId });
  } catch (error) {
    if (!(error instanceof DomainError)) throw error;
    return refuse(error, { flow, reason: error.code });
  }
  const oauth2 = target.definition.oauth2;
  const method = target.definition.connectionMethods.find((m) => m.id === flow.methodId);
  if (!oauth2 || method?.kind !== "oauth2-authorization-code") {
    return refuse(
      unprocessable("method_not_found", `${target.row.targetKey} no longer has ${flow.methodId}`),
      { flow, reason: "method_not_found" },
    );
  }

  let tokens: OAuth2TokenSet;
  try {
    tokens = await oauth2.exchangeCode({
      target: { ...target.view, secrets: target.secrets() },
      code: query.code,
      redirectUri: flow.redirectUri,
      codeVerifier: decryptPkceVerifier(deps.keyRing, flow.id, flow.pkceVerifierCiphertext ?? ""),
      fetch: withTimeout(deps.fetch, deps.settings.tokenRequestTimeoutMs),
      clock: deps.clock,
    });
  } catch (error) {
    if (!(error instanceof OAuth2Error)) throw error;
    const refusal =
      error.kind === "permanent"
        ? unprocessable("oauth2_code_rejected", error.message, { providerError: error.code })
        : new DomainError("bad_gateway", "provider_request_failed", error.message, {
            providerError: error.code,
          });
    return refuse(refusal, { flow, reason: "code_exchange_failed", providerError: error.code });
  }

  try {
    return await storeConnection(deps, flow, target.row, method.kind, tokens, requestId);
  } catch (error) {
    if (!(error instanceof DomainError)) throw error;
    return refuse(error, { flow, reason: error.code });
  }
}

function stateMessage(reason: string): string {
  if (reason === "used") return "this authorization was completed already; start a new one";
  if (reason === "expired") return "this authorization expired (10 minutes); start a new one";
  return "this authorization is unknown; start a new one";
}

async function storeConnection(
  deps: OAuth2FlowDeps,
  flow: FlowRow,
  target: { id: string; targetKey: string; displayName: string | null },
  methodKind: "oauth2-authorization-code",
  tokens: OAuth2TokenSet,
  requestId: string | undefined,
): Promise<CompletedOAuth2Flow> {
  const now = deps.clock.now();
  const subject = tokens.externalSubjectId ?? null;
  return deps.database.db.transaction(async (tx) => {
    const existing = await connectionToReconnect(tx, flow, subject);
    if (existing?.status === "revoked") {
      throw conflict("connection_revoked", `connection ${existing.id} is revoked; connect anew`);
    }
    if (
      existing &&
      existing.externalSubjectId !== null &&
      subject !== null &&
      existing.externalSubjectId !== subject
    ) {
      throw conflict(
        "oauth2_subject_mismatch",
        `connection ${existing.id} belongs to another provider account; connect it as a new connection`,
        { connectionId: existing.id },
      );
    }
    const id = existing?.id ?? newId("connection", now);
    if (existing) {
      await tx
        .update(integrationConnections)
        .set({
          status: "active",
          lastError: null,
          externalSubjectId: subject ?? existing.externalSubjectId,
          updatedAt: now,
        })
        .where(eq(integrationConnections.id, id));
    } else {
      await tx.insert(integrationConnections).values({
        id,
        organizationId: flow.organizationId,
        targetId: flow.targetId,
        methodId: flow.methodId,
        methodKind,
        displayName: flow.displayName ?? target.displayName ?? target.targetKey,
        status: "active",
        config: {},
        externalSubjectId: subject,
        credentialVersion: 0,
        createdBy: flow.principal,
        createdAt: now,
        updatedAt: now,
      });
    }
    const credentialVersion = await writeCredentialVersion(tx, deps.keyRing, {
      connectionId: id,
      organizationId: flow.organizationId,
      credential: tokenSetCredential(tokens),
      expiresAt: tokens.expiresAt ?? null,
      now,
    });
    if (existing) {
      await publishInvalidation(tx, { type: "connection.updated", connectionId: id });
    }
    await appendAudit(tx, deps.clock, {
      organizationId: flow.organizationId,
      actor: flow.principal,
      action: existing ? "connection.reconnected" : "connection.created",
      subjectType: "connection",
      subjectId: id,
      traceId: requestId ?? null,
      details: {
        targetKey: target.targetKey,
        methodId: flow.methodId,
        methodKind,
        credentialVersion,
        oauthSessionId: flow.id,
        ...(existing ? { previousStatus: existing.status } : {}),
      },
    });
    return {
      connection: await getConnection(deps, flow.organizationId, id, tx),
      reconnected: existing !== undefined,
      redirectAfter: flow.redirectAfter,
    };
  });
}

/**
 * The connection a completed flow re-authorises, locked for the transaction: the one the flow
 * names, or the organization's live connection to the same provider account on this target
 * and method (one provider account, one connection, so webhooks find exactly one).
 */
async function connectionToReconnect(tx: Executor, flow: FlowRow, subject: string | null) {
  if (flow.connectionId !== null) {
    const [named] = await tx
      .select()
      .from(integrationConnections)
      .where(
        and(
          eq(integrationConnections.id, flow.connectionId),
          eq(integrationConnections.organizationId, flow.organizationId),
        ),
      )
      .for("update");
    if (!named) throw notFound("connection");
    return named;
  }
  if (subject === null) return undefined;
  const [same] = await tx
    .select()
    .from(integrationConnections)
    .where(
      and(
        eq(integrationConnections.organizationId, flow.organizationId),
        eq(integrationConnections.targetId, flow.targetId),
        eq(integrationConnections.methodId, flow.methodId),
        eq(integrationConnections.externalSubjectId, subject),
        ne(integrationConnections.status, "revoked"),
      ),
    )
    .limit(1)
    .for("update");
  return same;
}

function withTimeout(fetch: FetchLike, timeoutMs: number): FetchLike {
  return (input, init) => fetch(input, { ...init, signal: AbortSignal.timeout(timeoutMs) });
}
