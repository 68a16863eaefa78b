import { DomainError, type ErrorKind } from "../errors";

/**
 * Every way `POST /internal/v1/credentials/resolve` can refuse, in one place: the stable code a
 * gateway sees, its HTTP status (through the error kind) and a message safe to show anyone.
 *
 * Refusals that depend on who asks or what the plan says are 403; state that an operator or user
 * can change back (a disabled target, a connection in error) is 409; a provider or stored
 * credential that cannot produce a value is 502 `credential_unavailable` (SPEC §7, §10).
 */
export const RESOLUTION_REFUSALS = {
  session_not_live: {
    kind: "forbidden",
    message: "the session does not exist, was revoked or has expired",
  },
  route_not_in_plan: { kind: "forbidden", message: "the route is not part of the session's plan" },
  route_has_no_credential: { kind: "forbidden", message: "the route needs no credential" },
  connection_not_active: { kind: "conflict", message: "the route's connection is not active" },
  target_disabled: { kind: "conflict", message: "the route's target is disabled" },
  credential_unavailable: {
    kind: "bad_gateway",
    message: "the credential could not be resolved",
  },
} as const satisfies Record<string, { kind: ErrorKind; message: string }>;

export type ResolutionRefusalCode = keyof typeof RESOLUTION_REFUSALS;

/**
 * A refusal. `reason` is finer than `code` (`session_revoked` vs `session_expired`) and goes only
 * to the audit log; the gateway learns the code.
 */
export class ResolutionRefusal extends DomainError {
  constructor(
    code: ResolutionRefusalCode,
    readonly reason: string,
  ) {
    const refusal = RESOLUTION_REFUSALS[code];
    super(refusal.kind, code, refusal.message);
  }
}

export const refuse = (code: ResolutionRefusalCode, reason: string) =>
  new ResolutionRefusal(code, reason);
