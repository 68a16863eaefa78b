import type { Clock } from "@keyway/integrations-core";
import { type JWTVerifyGetKey, errors as joseErrors, jwtVerify } from "jose";
import type { OrganizationRole } from "./principal";

export interface OidcSettings {
  issuer: string;
  audience: string | string[];
  /** jose `createRemoteJWKSet(new URL(jwksUrl))` (cached, key-rotation aware) or a local set. */
  getKey: JWTVerifyGetKey;
  orgClaim: string;
  roleClaim: string;
  roleMap: Readonly<Record<string, OrganizationRole>>;
  clock: Clock;
}

export interface OidcIdentity {
  subject: string;
  organizationId: string;
  role: OrganizationRole;
}

export interface OidcVerifier {
  /** Returns the identity, or `undefined` for any token that must be refused (never throws for bad tokens). */
  verify(token: string): Promise<OidcIdentity | undefined>;
}

/** Where the console sends users to sign in, and where it exchanges their code (from discovery). */
export interface ConsoleOidcClient {
  clientId: string;
  scopes: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
}

const ROLES = new Set<string>(["admin", "member", "viewer"]);

/** Bearer JWTs from the configured OIDC issuer, checked for issuer, audience and expiry. */
export function createOidcVerifier(settings: OidcSettings): OidcVerifier {
  return {
    async verify(token) {
      try {
        const { payload } = await jwtVerify(token, settings.getKey, {
          issuer: settings.issuer,
          audience: settings.audience,
          currentDate: settings.clock.now(),
          requiredClaims: ["sub", "exp"],
          clockTolerance: 5,
        });
        const org = payload[settings.orgClaim];
        const rawRole = payload[settings.roleClaim];
        if (
          typeof payload.sub !== "string" ||
          typeof org !== "string" ||
          typeof rawRole !== "string"
        ) {
          return undefined;
        }
        const mapped = settings.roleMap[rawRole] ?? (ROLES.has(rawRole) ? rawRole : undefined);
        if (mapped === undefined) return undefined;
        return { subject: payload.sub, organizationId: org, role: mapped as OrganizationRole };
      } catch (error) {
        if (error instanceof joseErrors.JOSEError) return undefined;
        throw error;
      }
    },
  };
}
