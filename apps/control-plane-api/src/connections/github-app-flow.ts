import { type Executor, integrationConnections, newId, oauthSessions } from "@keyway/db";
import {
  type AnyIntegrationDefinition,
  type AppInstallationBehaviour,
  type ConnectionMethod,
  createOAuthState,
  hashOAuthState,
  OAuth2Error,
  type TargetView,
} from "@keyway/integrations-core";
import { and, eq, isNull, ne } from "drizzle-orm";
import { appendAudit } from "../audit/service";
import type { OrganizationPrincipal } from "../auth/principal";
import { dropCachedCredentials } from "../credentials/credential-cache";
import type { AppDeps } from "../deps";
import { type ApiErrorCode, DomainError, type ErrorKind, unprocessable } from "../errors";
import { publishInvalidation } from "../events/invalidations";
import { loadTargetForUse, type UsableTarget } from "../targets/service";
import type { GitHubAppStartInput } from "./github-app-schemas";
import { isAllowedRedirect } from "./redirect-after";
import type { ConnectionResponse } from "./schemas";
import { getConnection, methodOf, usableTarget } from "./service";

/**
 * Connecting by installing a GitHub App (SPEC §5 github, §6.2 "GitHub App install start/complete").
 *
 * 1. `startGitHubAppInstall` (a member, `POST /v1/integration/connections/github-app/start`):
 *    a random state, stored hashed in `oauth_sessions` with the organization, the principal, the
 *    target and the method, single use, for 10 minutes; the answer is the app's install page with
 *    that state.
 * 2. After the install GitHub sends the browser back with `installation_id`, `setup_action`,
 *    `state` and — the app must have "Request user authorization (OAuth) during installation" —
 *    a `code`. With that option GitHub uses the app's *User authorization callback URL* (its
 *    Setup URL field becomes unavailable), so that is where the operator registers Keyway's
 *    callback. `completeGitHubAppInstall` runs for that public callback
 *    (`GET /p/integration/github-app/{targetKey}/callback`) and for consoles that receive the
 *    redirect themselves and forward it with the user's token
 *    (`POST /v1/integration/connections/github-app/complete`, where the state must also be the
 *    caller's own: same organization, same principal).
 * 3. Nothing in the query string is trusted. The state must be known, unused, unexpired and
 *    issued for this target; the `installation_id` is accepted only when GitHub lists it among
 *    the installations of the user who returned with the `code` (`GET /user/installations` with a
 *    user token from the code). Without a `code` the flow cannot check that, so it refuses and
 *    says how to configure the app.
 * 4. Then, in one transaction: the state is spent (a concurrent replay loses), the connection is
 *    created — or an existing one of the organization for the same installation is reused
 *    (`active`) or reconnected (`error` → `active`, cached tokens dropped, gateways told) — and
 *    the audit entry written.
 *
 * Every refusal leaves one audit entry (`connection.install_refused`, with a reason) and nothing
 * else: a refused state stays as it was, so a retry after GitHub was down can still complete.
 */

export type GitHubAppFlowDeps = Pick<
  AppDeps,
  "database" | "registry" | "keyRing" | "clock" | "fetch" | "settings" | "logger"
>;

/** How long a started installation may take to come back (SPEC §6.4 oauth_sessions). */
export const INSTALL_STATE_LIFETIME_MS = 10 * 60_000;

/**
 * Where GitHub sends the browser after an install: the app's User authorization callback URL
 * (with user authorization requested during installation GitHub uses it instead of the Setup
 * URL). One per target, so a state brought to another target's callback is recognised.
 */
export const GITHUB_APP_CALLBACK_PATH = "/p/integration/github-app/{targetKey}/callback";

export function githubAppCallbackUrl(publicUrl: string, targetKey: string): string {
  return `${publicUrl}${GITHUB_APP_CALLBACK_PATH.replace("{targetKey}", encodeURIComponent(targetKey))}`;
}

// ----- start ------------------------------------------------------------------------------------

export interface StartedInstall {
  installUrl: string;
  /** Where GitHub must send the browser back: the app's registered User authorization callback URL. */
  callbackUrl: string;
  expiresAt: string;
}

export async function startGitHubAppInstall(
  deps: GitHubAppFlowDeps,
  principal: OrganizationPrincipal,
  input: GitHubAppStartInput,
): Promise<StartedInstall> {
  const target = await usableTarget(deps, { targetKey: input.targetKey });
  const { method, behaviour } = installationMethod(target.definition, input.methodId);
  const view = targetWithSecrets(target);
  const missing = behaviour.missingSetup(view);
  if (missing.length > 0) {
    throw unprocessable(
      "github_app_not_configured",
      `target ${target.row.targetKey} is not set up for GitHub App installations; an operator must ${missing.join("; ")}`,
      { missing },
    );
  }
  if (input.redirectAfter !== undefined && !isAllowedRedirect(deps.settings, input.redirectAfter)) {
    await appendAudit(deps.database.db, deps.clock, {
      organizationId: principal.organizationId,
      actor: principal.actor,
      action: "connection.install_refused",
      subjectType: "target",
      subjectId: target.row.targetKey,
      details: { code: "redirect_not_allowed", reason: "open_redirect" },
    });
    throw unprocessable(
      "redirect_not_allowed",
      "redirectAfter must be on this API's origin or an origin in api.allowed_redirect_origins",
    );
  }
  const redirectAfter = input.redirectAfter ?? null;

  const now = deps.clock.now();
  const state = createOAuthState();
  const callbackUrl = githubAppCallbackUrl(deps.settings.publicUrl, target.row.targetKey);
  const expiresAt = new Date(now.getTime() + INSTALL_STATE_LIFETIME_MS);
  const installUrl = behaviour.installUrl(view, state);
  await deps.database.db.insert(oauthSessions).values({
    id: newId("oauthSession", now),
    organizationId: principal.organizationId,
    principal: principal.actor,
    targetId: target.row.id,
    flow: "github-app-installation",
    methodId: method.id,
    stateHash: hashOAuthState(state),
    redirectUri: callbackUrl,
    displayName: input.displayName ?? null,
    redirectAfter,
    expiresAt,
    createdAt: now,
  });
  return { installUrl, callbackUrl, expiresAt: expiresAt.toISOString() };
}

/** The target's installation method (the one named, or the first of its kind) and behaviour. */
function installationMethod(
  definition: AnyIntegrationDefinition,
  methodId: string | undefined,
): { method: ConnectionMethod; behaviour: AppInstallationBehaviour<unknown, unknown, unknown> } {
  const method =
    methodId !== undefined
      ? methodOf(definition, methodId)
      : definition.connectionMethods.find((m) => m.kind === "github-app-installation");
  if (method === undefined || method.kind !== "github-app-installation") {
    throw unprocessable(
      method === undefined ? "method_not_found" : "method_not_supported_here",
      `${definition.variantId} has no GitHub App installation method${method ? ` ${method.id}` : ""}`,
      { methods: definition.connectionMethods.map((m) => m.id) },
    );
  }
  // The registry refuses a definition with such a method and no behaviour.
  const behaviour = definition.appInstallation;
  if (behaviour === undefined) throw new Error(`${definition.variantId} lacks appInstallation`);
  return { method, behaviour };
}

function targetWithSecrets(target: UsableTarget): TargetView<unknown> & { secrets: unknown } {
  return { ...target.view, secrets: target.secrets() };
}

// ----- complete ---------------------------------------------------------------------------------

/** What GitHub's redirect after the install carried (every part untrusted, possibly missing). */
export interface SetupCallback {
  targetKey: string;
  state?: string | undefined;
  installationId?: string | undefined;
  setupAction?: string | undefined;
  code?: string | undefined;
}

/** Who completes: the browser at the public callback URL, or an authenticated console. */
export type SetupCompleter =
  | { via: "callback-url"; requestId: string }
  | { via: "api"; requestId: string; principal: OrganizationPrincipal };

export interface CompletedInstall {
  connection: ConnectionResponse;
  /** `created`; `reconnected` (was `error`); `existing` (already connected and active). */
  outcome: "created" | "reconnected" | "existing";
  redirectAfter: string | null;
}

/** A refused installation callback: its answer, and the reason its audit entry records. */
export class InstallRefusal extends DomainError {
  constructor(
    kind: ErrorKind,
    code: ApiErrorCode,
    message: string,
    readonly reason: string,
  ) {
    super(kind, code, message);
  }
}

const STATE_INVALID =
  "this installation link is not valid here; start the connection again from Keyway";

/** Facts about a callback learned while checking it, for the refusal's audit entry. */
interface RefusalFacts {
  organizationId: string | null;
}

export async function completeGitHubAppInstall(
  deps: GitHubAppFlowDeps,
  callback: SetupCallback,
  completer: SetupCompleter,
): Promise<CompletedInstall> {
  const facts: RefusalFacts = {
    organizationId: completer.via === "api" ? completer.principal.organizationId : null,
  };
  try {
    return await complete(deps, callback, completer, facts);
  } catch (error) {
    if (error instanceof InstallRefusal)
      await auditRefusal(deps, callback, completer, facts, error);
    throw error;
  }
}

async function complete(
  deps: GitHubAppFlowDeps,
  callback: SetupCallback,
  completer: SetupCompleter,
  facts: RefusalFacts,
): Promise<CompletedInstall> {
  const { db } = deps.database;
  let target: UsableTarget;
  try {
    target = await loadTargetForUse(db, deps, { targetKey: callback.targetKey });
  } catch (error) {
    if (!(error instanceof DomainError)) throw error;
    throw new InstallRefusal("not_found", "not_found", "no usable target here", "unknown_target");
  }
  const behaviour = target.definition.appInstallation;
  if (behaviour === undefined) {
    throw new InstallRefusal(
      "not_found",
      "not_found",
      "no usable target here",
      "no_app_installation",
    );
  }

  // The state: known, issued for this flow, the caller's own (API), unused, unexpired, and for
  // this target. Another organization's state answers like an unknown one.
  const [session] =
    callback.state === undefined || callback.state === ""
      ? []
      : await db
          .select()
          .from(oauthSessions)
          .where(eq(oauthSessions.stateHash, hashOAuthState(callback.state)))
          .limit(1);
  if (session === undefined || session.flow !== "github-app-installation") {
    throw new InstallRefusal("forbidden", "install_state_invalid", STATE_INVALID, "state_unknown");
  }
  if (completer.via === "api") {
    if (session.organizationId !== completer.principal.organizationId) {
      throw new InstallRefusal(
        "forbidden",
        "install_state_invalid",
        STATE_INVALID,
        "state_of_other_organization",
      );
    }
    if (session.principal !== completer.principal.actor) {
      throw new InstallRefusal(
        "forbidden",
        "install_state_invalid",
        STATE_INVALID,
        "state_of_other_principal",
      );
    }
  }
  facts.organizationId = session.organizationId;
  if (session.usedAt !== null) {
    throw new InstallRefusal(
      "forbidden",
      "install_state_used",
      "this installation link was already used; start the connection again from Keyway",
      "state_replayed",
    );
  }
  const now = deps.clock.now();
  if (session.expiresAt.getTime() <= now.getTime()) {
    throw new InstallRefusal(
      "forbidden",
      "install_state_expired",
      "this installation link expired (links last 10 minutes); start the connection again from Keyway",
      "state_expired",
    );
  }
  if (session.targetId !== target.row.id) {
    throw new InstallRefusal("forbidden", "install_state_invalid", STATE_INVALID, "other_target");
  }

  if (callback.setupAction === "request") {
    throw new InstallRefusal(
      "conflict",
      "installation_pending",
      "the installation was requested from an owner of the GitHub account; once they approve it, start the connection again",
      "installation_requested",
    );
  }
  if (callback.code === undefined || callback.code === "") {
    throw new InstallRefusal(
      "unprocessable",
      "installation_authorization_missing",
      "GitHub returned no authorization code, so Keyway cannot check that you can access this " +
        "installation. An operator must enable “Request user authorization (OAuth) during " +
        "installation” in the GitHub App's settings and set its User authorization callback URL " +
        "to this address (GitHub then sends installs there instead of the Setup URL); then " +
        "start again.",
      "no_code",
    );
  }
  const installationId = callback.installationId ?? "";
  if (!/^[0-9]{1,20}$/.test(installationId)) {
    throw new InstallRefusal(
      "forbidden",
      "installation_not_accessible",
      "the redirect from GitHub named no valid installation",
      "installation_id_invalid",
    );
  }

  let accessible: boolean;
  try {
    accessible = await behaviour.verifyInstallation({
      target: targetWithSecrets(target),
      code: callback.code,
      installationId,
      fetch: deps.fetch,
      clock: deps.clock,
    });
  } catch (error) {
    if (!(error instanceof OAuth2Error)) throw error;
    deps.logger.warn("GitHub App installation check failed", {
      requestId: completer.requestId,
      targetKey: target.row.targetKey,
      kind: error.kind,
      code: error.code,
    });
    if (error.kind === "temporary") {
      throw new InstallRefusal(
        "bad_gateway",
        "provider_request_failed",
        `GitHub could not be asked who installed the app (${error.code}); try again`,
        `provider_temporary:${error.code}`,
      );
    }
    throw new InstallRefusal(
      "forbidden",
      "installation_not_accessible",
      `GitHub refused the authorization code (${error.code}); start the connection again`,
      `code_refused:${error.code}`,
    );
  }
  if (!accessible) {
    throw new InstallRefusal(
      "forbidden",
      "installation_not_accessible",
      `the GitHub user who returned cannot access installation ${installationId}`,
      "installation_not_listed",
    );
  }

  return db.transaction(async (tx) => {
    const [claimed] = await tx
      .update(oauthSessions)
      .set({ usedAt: now })
      .where(and(eq(oauthSessions.id, session.id), isNull(oauthSessions.usedAt)))
      .returning({ id: oauthSessions.id });
    if (claimed === undefined) {
      throw new InstallRefusal(
        "forbidden",
        "install_state_used",
        "this installation link was already used; start the connection again from Keyway",
        "state_replayed",
      );
    }
    const { connectionId, outcome } = await connectInstallation(deps, tx, {
      organizationId: session.organizationId,
      actor: session.principal,
      targetId: target.row.id,
      targetKey: target.row.targetKey,
      methodId: session.methodId,
      displayName: session.displayName ?? `GitHub App installation ${installationId}`,
      installationId,
      via: completer.via,
    });
    return {
      connection: await getConnection(deps, session.organizationId, connectionId, tx),
      outcome,
      redirectAfter: session.redirectAfter,
    };
  });
}

/**
 * The organization's connection for the installation: an active one is reused (a second one
 * would make the installation's webhooks ambiguous), one in `error` is made active again, and
 * otherwise (none, or only revoked ones) a new one is created.
 */
async function connectInstallation(
  deps: GitHubAppFlowDeps,
  tx: Executor,
  input: {
    organizationId: string;
    actor: string;
    targetId: string;
    targetKey: string;
    methodId: string;
    displayName: string;
    installationId: string;
    via: SetupCompleter["via"];
  },
): Promise<{ connectionId: string; outcome: CompletedInstall["outcome"] }> {
  const now = deps.clock.now();
  const [existing] = await tx
    .select()
    .from(integrationConnections)
    .where(
      and(
        eq(integrationConnections.organizationId, input.organizationId),
        eq(integrationConnections.targetId, input.targetId),
        eq(integrationConnections.externalSubjectId, input.installationId),
        eq(integrationConnections.methodKind, "github-app-installation"),
        ne(integrationConnections.status, "revoked"),
      ),
    )
    .orderBy(integrationConnections.id)
    .limit(1)
    .for("update");
  const audit = (action: string, connectionId: string, details: Record<string, unknown>) =>
    appendAudit(tx, deps.clock, {
      organizationId: input.organizationId,
      actor: input.actor,
      action,
      subjectType: "connection",
      subjectId: connectionId,
      details: { installationId: input.installationId, via: input.via, ...details },
    });

  if (existing?.status === "active") {
    // Nothing about the connection changes, but its owner just confirmed it: `updatedAt` says so,
    // which is how a client waiting for the flow (the CLI's `connect github-app`) sees it end.
    await tx
      .update(integrationConnections)
      .set({ updatedAt: now })
      .where(eq(integrationConnections.id, existing.id));
    await audit("connection.install_confirmed", existing.id, {});
    return { connectionId: existing.id, outcome: "existing" };
  }
  if (existing !== undefined) {
    await tx
      .update(integrationConnections)
      .set({ status: "active", lastError: null, updatedAt: now })
      .where(eq(integrationConnections.id, existing.id));
    await dropCachedCredentials(tx, existing.id);
    await audit("connection.reconnected", existing.id, { previousStatus: existing.status });
    await publishInvalidation(tx, { type: "connection.updated", connectionId: existing.id });
    return { connectionId: existing.id, outcome: "reconnected" };
  }
  const id = newId("connection", now);
  await tx.insert(integrationConnections).values({
    id,
    organizationId: input.organizationId,
    targetId: input.targetId,
    methodId: input.methodId,
    methodKind: "github-app-installation",
    displayName: input.displayName,
    status: "active",
    config: {},
    externalSubjectId: input.installationId,
    credentialVersion: 0,
    createdBy: input.actor,
    createdAt: now,
    updatedAt: now,
  });
  await audit("connection.created", id, {
    targetKey: input.targetKey,
    methodId: input.methodId,
    methodKind: "github-app-installation",
  });
  return { connectionId: id, outcome: "created" };
}

/** The one trace a refused callback leaves. Never the state or the code. */
async function auditRefusal(
  deps: GitHubAppFlowDeps,
  callback: SetupCallback,
  completer: SetupCompleter,
  facts: RefusalFacts,
  refusal: InstallRefusal,
): Promise<void> {
  const installationId =
    callback.installationId !== undefined && /^[0-9]{1,20}$/.test(callback.installationId)
      ? callback.installationId
      : null;
  try {
    await appendAudit(deps.database.db, deps.clock, {
      organizationId: facts.organizationId,
      actor: completer.via === "api" ? completer.principal.actor : "callback-url",
      action: "connection.install_refused",
      subjectType: "target",
      subjectId: callback.targetKey,
      traceId: completer.requestId,
      details: {
        code: refusal.code,
        reason: refusal.reason,
        status: refusal.status,
        via: completer.via,
        installationId,
        setupAction: callback.setupAction?.slice(0, 20) ?? null,
      },
    });
  } catch (error) {
    // The refusal stands; a failed audit write is logged, not turned into a 500.
    deps.logger.error("could not audit a refused GitHub App installation callback", {
      requestId: completer.requestId,
      code: refusal.code,
      error: error instanceof Error ? error.name : "unknown",
    });
  }
}
