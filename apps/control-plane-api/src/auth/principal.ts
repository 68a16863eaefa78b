import { DomainError, forbidden } from "../errors";

export type OrganizationRole = "admin" | "member" | "viewer";

/** Who is calling: an operator (deployment-wide) or a member of one organization. */
export type Principal =
  | { kind: "operator"; actor: string }
  | {
      kind: "organization";
      organizationId: string;
      role: OrganizationRole;
      /** `tok_…` for API tokens, `oidc:<sub>` for OIDC users. */
      actor: string;
      via: "api-token" | "oidc";
    };

export type OrganizationPrincipal = Extract<Principal, { kind: "organization" }>;

const RANK: Record<OrganizationRole, number> = { viewer: 1, member: 2, admin: 3 };

/**
 * Viewers read, members create connections, profiles and sessions, admins delete and manage
 * tokens (SPEC §6.1). Operators are not organization members and use the operator API.
 */
export function requireRole(
  principal: Principal,
  minimum: OrganizationRole,
): OrganizationPrincipal {
  if (principal.kind !== "organization") {
    throw forbidden(
      "this route needs an organization token; operator tokens manage targets and organizations",
    );
  }
  if (RANK[principal.role] < RANK[minimum]) {
    throw forbidden(`this action needs the ${minimum} role; you have ${principal.role}`);
  }
  return principal;
}

export function requireOperator(principal: Principal): Extract<Principal, { kind: "operator" }> {
  if (principal.kind !== "operator") throw forbidden("this route needs an operator token");
  return principal;
}

export const unauthorized = (message = "missing or invalid bearer token") =>
  new DomainError("unauthorized", "unauthorized", message);
