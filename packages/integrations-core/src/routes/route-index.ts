import type { EgressRoute, RouteMatch } from "../plan/schema";
import {
  normalizeHost,
  normalizeMethod,
  normalizeRequestPath,
  type PathRefusalReason,
  queryIsExcluded,
  type RouteRequest,
  routeHosts,
  routeMethods,
  routePathPrefixes,
} from "./route-matcher";

const SLASH = 0x2f;

/**
 * The gateway's runtime form of the route list: built once per plan, then frozen. A lookup costs
 * one Map get per candidate prefix of the request path (bounded by the longest prefix the host
 * has), whatever the number of routes. It agrees with `routeMatchesRequest` by construction: hosts,
 * methods and prefixes are normalized by the same functions. It reads only each route's `match`,
 * so it can index any object carrying one (the gateway indexes route positions, and shares one
 * index among plans whose routes match alike).
 */
export interface RouteIndex<R extends Routable = EgressRoute> {
  /** The route that wins for this request: longest matching prefix, then earliest in the plan. */
  lookup(req: RouteRequest): R | undefined;
  /** Every matching route, in the order `lookup` prefers them. */
  lookupAll(req: RouteRequest): R[];
  /** Whether any route names this (normalized) host. */
  isManagedHost(host: string): boolean;
  /** The managed hosts, normalized, in order of first appearance. */
  hosts(): readonly string[];
}

/** What the index needs of a route. */
export interface Routable {
  readonly match: RouteMatch;
}

export type DenyReason = "no_route" | "malformed_host" | PathRefusalReason;

export type MatchResult<R extends Routable = EgressRoute> =
  | { readonly kind: "matched"; readonly route: R }
  | { readonly kind: "denied"; readonly reason: DenyReason }
  | { readonly kind: "unmanaged" };

export interface RawRequest {
  /** Host header or authority as received. */
  readonly host: string;
  readonly method: string;
  /** Request-target path as received, query included. */
  readonly rawPath: string;
}

interface IndexedRoute<R> {
  readonly route: R;
  /** Upper-cased methods, or null for any method. */
  readonly methods: ReadonlySet<string> | null;
}

interface HostTable<R> {
  /** Prefix → routes with that prefix, in plan order. */
  readonly byPrefix: Map<string, IndexedRoute<R>[]>;
  /**
   * `prefixLengths[n]` has ENDS_WITH_SLASH set when some n-character prefix ends with `/`, and
   * ENDS_OTHERWISE when one ends with anything else. Lets the walk skip most Map gets: in a plan
   * only `/` ends with a slash.
   */
  readonly prefixLengths: Uint8Array;
  readonly maxPrefixLength: number;
}

const ENDS_WITH_SLASH = 1;
const ENDS_OTHERWISE = 2;

export function buildRouteIndex<R extends Routable>(routes: readonly R[]): RouteIndex<R> {
  const building = new Map<string, Map<string, IndexedRoute<R>[]>>();
  for (const route of routes) {
    const methods = routeMethods(route.match);
    const entry: IndexedRoute<R> = { route, methods: methods === null ? null : new Set(methods) };
    const prefixes = routePathPrefixes(route.match);
    for (const host of routeHosts(route.match)) {
      let byPrefix = building.get(host);
      if (byPrefix === undefined) {
        byPrefix = new Map();
        building.set(host, byPrefix);
      }
      for (const prefix of prefixes) {
        const bucket = byPrefix.get(prefix);
        if (bucket === undefined) byPrefix.set(prefix, [entry]);
        else bucket.push(entry);
      }
    }
  }

  const tables = new Map<string, HostTable<R>>();
  for (const [host, byPrefix] of building) {
    // Starts at 0: a host whose routes have no usable prefix still gets a (never matching) table.
    let maxPrefixLength = 0;
    for (const prefix of byPrefix.keys()) {
      if (prefix.length > maxPrefixLength) maxPrefixLength = prefix.length;
    }
    const prefixLengths = new Uint8Array(maxPrefixLength + 1);
    for (const prefix of byPrefix.keys()) {
      prefixLengths[prefix.length]! |= prefix.endsWith("/") ? ENDS_WITH_SLASH : ENDS_OTHERWISE;
    }
    tables.set(host, { byPrefix, prefixLengths, maxPrefixLength });
  }
  const hostList = Object.freeze([...tables.keys()]);

  return Object.freeze({
    lookup(req: RouteRequest): R | undefined {
      const table = tables.get(req.host);
      if (table === undefined) return undefined;
      return search(table, req.path, normalizeMethod(req.method), null)?.route;
    },
    lookupAll(req: RouteRequest): R[] {
      const table = tables.get(req.host);
      if (table === undefined) return [];
      const found: IndexedRoute<R>[] = [];
      search(table, req.path, normalizeMethod(req.method), found);
      return found.map((entry) => entry.route);
    },
    isManagedHost(host: string): boolean {
      return tables.has(host);
    },
    hosts(): readonly string[] {
      return hostList;
    },
  });
}

/**
 * Visits the prefixes of `path` that match it at a segment boundary, longest first: the path
 * itself, then for each `/` from the right, the part up to and including it, then the part before
 * it. With `found` null, returns the first route accepting `method`; otherwise appends every such
 * route once (a route with several matching prefixes is placed at its longest) and returns
 * undefined. Substrings are taken only for lengths some prefix actually has.
 */
function search<R>(
  table: HostTable<R>,
  path: string,
  method: string,
  found: IndexedRoute<R>[] | null,
): IndexedRoute<R> | undefined {
  const n = path.length;
  let hit = probe(table, path, n, method, found);
  if (hit !== undefined) return hit;
  // A slash beyond the longest prefix cannot end a candidate, so start the walk no further right.
  let slash = path.lastIndexOf("/", Math.min(n - 1, table.maxPrefixLength));
  while (slash >= 0) {
    if (slash + 1 < n) {
      hit = probe(table, path, slash + 1, method, found);
      if (hit !== undefined) return hit;
    }
    if (slash === 0) break;
    // After an empty segment (`//`) the part before this slash ends with `/` and is the
    // candidate the next slash contributes first; probing it here too would only repeat it.
    if (path.charCodeAt(slash - 1) !== SLASH) {
      hit = probe(table, path, slash, method, found);
      if (hit !== undefined) return hit;
    }
    slash = path.lastIndexOf("/", slash - 1);
  }
  return undefined;
}

function probe<R>(
  table: HostTable<R>,
  path: string,
  length: number,
  method: string,
  found: IndexedRoute<R>[] | null,
): IndexedRoute<R> | undefined {
  if (length > table.maxPrefixLength) return undefined;
  const wanted = path.charCodeAt(length - 1) === SLASH ? ENDS_WITH_SLASH : ENDS_OTHERWISE;
  if ((table.prefixLengths[length]! & wanted) === 0) return undefined;
  const bucket = table.byPrefix.get(length === path.length ? path : path.slice(0, length));
  if (bucket === undefined) return undefined;
  for (let i = 0; i < bucket.length; i++) {
    const entry = bucket[i]!;
    if (entry.methods !== null && !entry.methods.has(method)) continue;
    if (found === null) return entry;
    if (!found.includes(entry)) found.push(entry);
  }
  return undefined;
}

const UNMANAGED: MatchResult<never> = Object.freeze({ kind: "unmanaged" });
const DENIED: { readonly [D in DenyReason]: MatchResult<never> } = {
  no_route: Object.freeze({ kind: "denied", reason: "no_route" }),
  malformed_host: Object.freeze({ kind: "denied", reason: "malformed_host" }),
  dot_segment: Object.freeze({ kind: "denied", reason: "dot_segment" }),
  encoded_slash: Object.freeze({ kind: "denied", reason: "encoded_slash" }),
  backslash: Object.freeze({ kind: "denied", reason: "backslash" }),
  nul: Object.freeze({ kind: "denied", reason: "nul" }),
  malformed: Object.freeze({ kind: "denied", reason: "malformed" }),
};

/**
 * Classifies a request as received. A host no route names is unmanaged whatever its path (the
 * egress policy decides it); a managed host's path must normalize and match a route. A Host that
 * does not parse is denied: it cannot be shown to be unmanaged.
 */
export function matchRequest<R extends Routable>(
  index: RouteIndex<R>,
  req: RawRequest,
): MatchResult<R> {
  const host = normalizeHost(req.host);
  if (host === null) return DENIED.malformed_host;
  if (!index.isManagedHost(host)) return UNMANAGED;
  const path = normalizeRequestPath(req.rawPath);
  if (!path.ok) return DENIED[path.reason];
  const route = index.lookup({ host, method: req.method, path: path.path });
  if (route === undefined) return DENIED.no_route;
  const excluded = route.match.excludeQuery;
  // Routes do not overlap, so the one a query excludes leaves no other to match.
  if (excluded !== undefined && queryIsExcluded(excluded, req.rawPath)) return DENIED.no_route;
  return { kind: "matched", route };
}
