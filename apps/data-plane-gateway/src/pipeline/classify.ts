import {
  type DenyReason,
  type EgressRoute,
  matchRequest,
  normalizeHost,
} from "@keyway/integrations-core";
import { GatewayError } from "../errors";
import type { PlanCache, SessionPlan } from "../plan-cache";

/**
 * Stage 2 — classify: which route of the session's plan a request belongs to, using the one route
 * matcher of `@keyway/integrations-core` (SPEC §4.3). A host no route names is `unmanaged` (the
 * egress policy decides it); a managed host without a matching route is refused with 403
 * `policy_denied`, never passed through, and so are path shapes the matcher will not guess at.
 */

export type { SessionPlan };

export type Classification =
  | { readonly kind: "matched"; readonly route: EgressRoute }
  | { readonly kind: "unmanaged"; readonly host: string };

export interface ClassifyRequest {
  /** Absolute-form authority, or the CONNECT authority for requests inside a tunnel. */
  authority: string;
  method: string;
  /** Path and query as received. */
  rawPath: string;
}

export interface Classify {
  /** The plan of a session, from memory when possible. */
  loadSessionPlan(digest: string): SessionPlan | Promise<SessionPlan>;
  /** Matched or unmanaged; throws 403 `policy_denied` (400 for a host that does not parse). */
  classifyRequest(plan: SessionPlan, request: ClassifyRequest): Classification;
  /** Whether a route of the plan names this authority's host (decides interception of CONNECT). */
  isManagedHost(plan: SessionPlan, authority: string): boolean;
}

const pathRefused = (what: string) =>
  new GatewayError("policy_denied", `paths with ${what} are refused on managed hosts`);

// One error per reason, made once: refusals allocate nothing.
const DENIALS: Readonly<Record<DenyReason, GatewayError>> = {
  no_route: new GatewayError(
    "policy_denied",
    "no route of this session allows this method and path on this host",
  ),
  malformed_host: new GatewayError("bad_request", "the request host is malformed"),
  dot_segment: pathRefused("dot segments"),
  encoded_slash: pathRefused("encoded slashes"),
  backslash: pathRefused("backslashes"),
  nul: pathRefused("NUL bytes"),
  malformed: new GatewayError("policy_denied", "the request path is malformed"),
};

export function createClassify(options: { plans: PlanCache }): Classify {
  const { plans } = options;

  async function loadUncached(digest: string): Promise<SessionPlan> {
    try {
      return await plans.load(digest);
    } catch (error) {
      throw new GatewayError("control_plane_unavailable", "the session's plan is unavailable", {
        cause: error,
      });
    }
  }

  return {
    loadSessionPlan(digest) {
      return plans.cached(digest) ?? loadUncached(digest);
    },

    classifyRequest(plan, request) {
      const result = matchRequest(plan.index, {
        host: request.authority,
        method: request.method,
        rawPath: request.rawPath,
      });
      if (result.kind === "matched") {
        // The index is shared by the plans of one shape: it finds a position, the plan its route.
        return { kind: "matched", route: plan.route(result.route.position) };
      }
      if (result.kind === "denied") throw DENIALS[result.reason];
      // `matchRequest` found the host well-formed, so normalizing it again cannot fail.
      return { kind: "unmanaged", host: normalizeHost(request.authority) ?? request.authority };
    },

    isManagedHost(plan, authority) {
      const host = normalizeHost(authority);
      return host !== null && plan.index.isManagedHost(host);
    },
  };
}
