import type { EgressRoute } from "../plan/schema";

/**
 * Hosts a sandbox reaches directly by default: its own loopback, where local dev servers run.
 * `::1` is written bare because that is how curl, Go, Python and undici spell it in NO_PROXY.
 */
export const LOOPBACK_NO_PROXY = ["localhost", "127.0.0.1", "::1"] as const;

/**
 * NO_PROXY entries for a plan (SPEC §9): the loopback names minus every entry that could make a
 * client bypass the gateway for a host a route names. Route hosts on loopback are real (an MCP
 * server or internal API next to the sandbox), and a request that skips the gateway carries no
 * credential and escapes the MCP tool allow-list.
 *
 * Tools disagree on NO_PROXY matching: curl, Go and undici match an entry as the host or a parent
 * domain and ignore ports; Python and older tools test a plain string suffix. An entry is kept
 * only when it is not a string suffix of any route's host name — the widest of those readings —
 * so no tool can read it as covering a route host.
 */
export function sandboxNoProxy(routes: readonly Pick<EgressRoute, "match">[]): string[] {
  const routeHostNames = new Set<string>();
  for (const route of routes) {
    // The raw hosts, not the matcher's normalized list: a host it would skip costs nothing here.
    for (const host of route.match.hosts) routeHostNames.add(hostName(host));
  }
  return LOOPBACK_NO_PROXY.filter(
    (entry) => ![...routeHostNames].some((name) => name.endsWith(entry.toLowerCase())),
  );
}

/** `host[:port]` → host, for names and IPv4 (route hosts are never IPv6, see `routeHostSchema`). */
function hostName(host: string): string {
  const colon = host.lastIndexOf(":");
  return (colon < 0 ? host : host.slice(0, colon)).toLowerCase();
}
