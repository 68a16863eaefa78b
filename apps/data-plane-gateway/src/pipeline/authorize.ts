import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { type EgressPolicy, firstNonPublicAddress } from "@keyway/integrations-core";
import { GatewayError } from "../errors";

/**
 * Stage 3 — authorize: may this session reach a host no route names (SPEC §7 "Unmatched plain
 * HTTP", CONNECT policy)? The policy is the plan's own (`plan.egressPolicy`, set per profile) or
 * else the deployment's (`gateway.egress`). Then the host is resolved once and every address
 * checked: loopback, link-local (cloud metadata), private, shared and reserved ranges are refused
 * unless `allow_private_networks`. The caller connects to the returned address, so a second DNS
 * answer can never swap in another (DNS-rebinding safe). Route upstreams never come here: they
 * are operator configuration, not sandbox input.
 */

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

export type ResolveHost = (hostname: string) => Promise<readonly ResolvedAddress[]>;

export interface EgressSettings {
  defaultPolicy: "allow" | "deny";
  /** `gateway.egress.allow_hosts`: `example.com` (that host, any port) or `*.example.com`. */
  allowHosts: readonly string[];
  allowPrivateNetworks: boolean;
}

export interface EgressTarget {
  /** Normalized `host[:port]` (default port removed), as the route matcher compares hosts. */
  host: string;
  /** Host name or IP literal to resolve, without brackets. */
  hostname: string;
  port: number;
}

export interface Destination {
  address: string;
  family: 4 | 6;
  port: number;
}

export interface AuthorizeOptions {
  egress: EgressSettings;
  resolveHost?: ResolveHost;
}

export type AuthorizeEgress = (
  plan: { readonly egressPolicy?: EgressPolicy | undefined },
  target: EgressTarget,
) => Promise<Destination>;

export const resolveWithSystemDns: ResolveHost = async (hostname) => {
  const answers = await lookup(hostname, { all: true, verbatim: true });
  return answers.map(({ address, family }) => ({ address, family: family === 6 ? 6 : 4 }));
};

/** Compiled form of `gateway.egress.allow_hosts`: exact names and `*.` suffixes. */
export interface HostPatterns {
  matches(hostname: string): boolean;
}

export function compileHostPatterns(patterns: readonly string[]): HostPatterns {
  const exact = new Set<string>();
  const suffixes: string[] = [];
  for (const pattern of patterns) {
    const lower = pattern.toLowerCase();
    if (lower.startsWith("*.")) suffixes.push(lower.slice(1));
    else exact.add(lower);
  }
  return {
    matches(hostname) {
      if (exact.has(hostname)) return true;
      for (const suffix of suffixes) {
        if (hostname.length > suffix.length && hostname.endsWith(suffix)) return true;
      }
      return false;
    },
  };
}

const POLICY_DENIED = new GatewayError(
  "policy_denied",
  "egress to this host is not allowed for this session",
);

export function createAuthorize(options: AuthorizeOptions): AuthorizeEgress {
  const { egress } = options;
  const resolveHost = options.resolveHost ?? resolveWithSystemDns;
  const deploymentPatterns = compileHostPatterns(egress.allowHosts);

  function policyAllows(policy: EgressPolicy | undefined, target: EgressTarget): boolean {
    if (policy !== undefined) {
      // A profile's allow-list holds route-style hosts: `host[:port]`, default port omitted.
      return policy.default === "allow" || policy.allowHosts.includes(target.host);
    }
    if (egress.defaultPolicy === "allow") return true;
    return deploymentPatterns.matches(hostnameOf(target.host));
  }

  return async function authorizeEgress(plan, target) {
    if (!policyAllows(plan.egressPolicy, target)) throw POLICY_DENIED;

    let addresses: readonly ResolvedAddress[];
    const family = isIP(target.hostname);
    if (family !== 0) {
      addresses = [{ address: target.hostname, family: family === 6 ? 6 : 4 }];
    } else {
      try {
        addresses = await resolveHost(target.hostname);
      } catch (error) {
        throw new GatewayError("upstream_unreachable", "the host name does not resolve", {
          cause: error,
        });
      }
    }
    const first = addresses[0];
    if (first === undefined) {
      throw new GatewayError("upstream_unreachable", "the host name does not resolve");
    }
    // Every answer must be public: a name resolving to a public and a private address is refused.
    const refused = egress.allowPrivateNetworks ? undefined : firstNonPublicAddress(addresses);
    if (refused !== undefined) {
      throw new GatewayError(
        "private_address_denied",
        `egress to ${refused.addressClass.replace("_", "-")} addresses is not allowed`,
      );
    }
    return { address: first.address, family: first.family, port: target.port };
  };
}

/** `host[:port]` → `host` (IPv6 literals keep their brackets, as the patterns cannot name them). */
function hostnameOf(host: string): string {
  if (host.startsWith("[")) return host;
  const colon = host.lastIndexOf(":");
  return colon < 0 ? host : host.slice(0, colon);
}
