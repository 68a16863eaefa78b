export {
  buildRouteIndex,
  type DenyReason,
  type MatchResult,
  matchRequest,
  type RawRequest,
  type Routable,
  type RouteIndex,
} from "./route-index";
export {
  type NormalizedPath,
  normalizeHost,
  normalizeMethod,
  normalizePathPrefix,
  normalizeRequestPath,
  type PathRefusalReason,
  pathHasPrefix,
  type RouteRequest,
  routeHosts,
  routeMatchesRequest,
  routeMethods,
  routePathPrefixes,
  routesOverlap,
} from "./route-matcher";
