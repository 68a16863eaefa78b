import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { EgressRoute, RouteMatch } from "../plan/schema";
import { buildRouteIndex } from "./route-index";
import { normalizeRequestPath, routeMatchesRequest, routesOverlap } from "./route-matcher";

const HOSTS = ["a.com", "b.com", "a.com:8443"];
const METHODS = ["GET", "POST", "PUT"];
const PREFIXES = ["/", "/v1", "/v10", "/v1/x", "/v1/x/y", "/w"];
// Every prefix is itself a request path, plus children and near misses of each.
const PATHS = [...PREFIXES, "/v1/x/zz", "/v10/a", "/w/q", "/v1/", "/zz", "/v1//x", "/v1/x/"];
const UNIVERSE = HOSTS.flatMap((host) =>
  [...METHODS, "PATCH"].flatMap((method) => PATHS.map((path) => ({ host, method, path }))),
);

const nonEmptySubset = (items: readonly string[]) =>
  fc.uniqueArray(fc.constantFrom(...items), { minLength: 1, maxLength: items.length });

function routeMatchArb(prefixes: readonly string[]): fc.Arbitrary<RouteMatch> {
  return fc.record(
    {
      hosts: nonEmptySubset(HOSTS),
      methods: nonEmptySubset(METHODS),
      pathPrefixes: nonEmptySubset(prefixes),
    },
    { requiredKeys: ["hosts"] },
  );
}

// Written apart from route-matcher so the index is checked against a second reading of the spec.
function referenceMatchLength(match: RouteMatch, host: string, method: string, path: string) {
  if (!match.hosts.includes(host)) return -1;
  if (match.methods && !match.methods.includes(method.toUpperCase())) return -1;
  let longest = -1;
  for (const prefix of match.pathPrefixes ?? ["/"]) {
    const boundary = prefix.endsWith("/") ? prefix : `${prefix}/`;
    if (path === prefix || path.startsWith(boundary)) longest = Math.max(longest, prefix.length);
  }
  return longest;
}

function referenceLookupAll(
  routes: readonly EgressRoute[],
  host: string,
  method: string,
  path: string,
) {
  return routes
    .map((route, order) => ({
      route,
      order,
      length: referenceMatchLength(route.match, host, method, path),
    }))
    .filter((m) => m.length >= 0)
    .sort((x, y) => y.length - x.length || x.order - y.order)
    .map((m) => m.route);
}

function toRoute(match: RouteMatch, i: number): EgressRoute {
  return {
    id: `r${i}`,
    bindingId: "b",
    match,
    upstream: { baseUrl: "https://up.example" },
    auth: { type: "none" },
  };
}

describe("routesOverlap properties", () => {
  it("holds exactly when some request of the universe matches both routes", () => {
    fc.assert(
      fc.property(routeMatchArb(PREFIXES), routeMatchArb(PREFIXES), (a, b) => {
        const witnessed = UNIVERSE.some(
          (req) => routeMatchesRequest(a, req) && routeMatchesRequest(b, req),
        );
        expect(routesOverlap(a, b)).toBe(witnessed);
      }),
      { numRuns: 2000 },
    );
  });

  it("is symmetric and reflexive", () => {
    fc.assert(
      fc.property(routeMatchArb(PREFIXES), routeMatchArb(PREFIXES), (a, b) => {
        expect(routesOverlap(a, b)).toBe(routesOverlap(b, a));
        expect(routesOverlap(a, a)).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("buildRouteIndex properties", () => {
  // Trailing-slash and empty-segment prefixes are outside the plan schema, but the index must
  // still agree with the matcher on them.
  const indexPrefixes = [...PREFIXES, "/v1/", "//"];
  const requestArb = fc.record({
    host: fc.constantFrom(...HOSTS, "c.com"),
    method: fc.constantFrom("GET", "get", "Post", "PUT", "PATCH"),
    path: fc.constantFrom(...PATHS, "//", "//x", "/v1/x/y/z/w"),
  });

  it("lookupAll equals a brute-force filter and sort; lookup is its first element", () => {
    fc.assert(
      fc.property(
        fc.array(routeMatchArb(indexPrefixes), { minLength: 0, maxLength: 12 }),
        fc.array(requestArb, { minLength: 1, maxLength: 20 }),
        (matches, requests) => {
          const routes = matches.map(toRoute);
          const index = buildRouteIndex(routes);
          for (const req of requests) {
            const expected = referenceLookupAll(routes, req.host, req.method, req.path);
            expect(index.lookupAll(req)).toEqual(expected);
            expect(index.lookup(req)).toBe(expected[0]);
            for (const route of routes) {
              expect(routeMatchesRequest(route.match, req)).toBe(expected.includes(route));
            }
            expect(index.isManagedHost(req.host)).toBe(
              routes.some((r) => r.match.hosts.includes(req.host)),
            );
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe("normalizeRequestPath properties", () => {
  const TOKENS = [
    "/",
    "/",
    "a",
    "B",
    ".",
    "..",
    "%2e",
    "%2E",
    "~",
    "%7e",
    "%7E",
    "%41",
    "%3b",
    ";",
    "%25",
    "%2F",
    "%2f",
    "%5C",
    "\\",
    "%00",
    "%",
    "%zz",
    "%c3%a9",
    '"',
    " ",
    "?",
    "#",
    "?/../",
  ];
  const pathArb = fc
    .array(fc.constantFrom(...TOKENS), { maxLength: 14 })
    .map((tokens) => `/${tokens.join("")}`);

  function decodeSegment(segment: string): string {
    return segment.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) =>
      String.fromCharCode(Number.parseInt(hex, 16)),
    );
  }

  it("is idempotent and its output has no dot, slash, backslash or NUL after decoding", () => {
    fc.assert(
      fc.property(pathArb, (raw) => {
        const once = normalizeRequestPath(raw);
        if (!once.ok) return;
        expect(normalizeRequestPath(once.path)).toEqual(once);
        for (const segment of once.path.split("/").slice(1)) {
          const decoded = decodeSegment(segment);
          expect(decoded).not.toBe(".");
          expect(decoded).not.toBe("..");
          expect(decoded.split(";")[0]).not.toMatch(/^\.\.?$/);
          expect(decoded).not.toMatch(/[/\\\0]/);
        }
        expect(once.path).not.toMatch(/%(?:[0-9A-F][a-f]|[a-f][0-9A-Fa-f])/);
        expect(once.path).not.toMatch(/[?#\s]/);
      }),
      { numRuns: 5000 },
    );
  });

  it("gives the same result whichever unreserved characters are percent-encoded", () => {
    const unreservedPath = fc
      .array(fc.constantFrom("/", "a", "Z", "0", "-", ".", "_", "~", "..", "v1"), { maxLength: 12 })
      .map((tokens) => `/${tokens.join("")}`);
    fc.assert(
      fc.property(unreservedPath, fc.array(fc.boolean(), { minLength: 1 }), (path, flips) => {
        const encoded = [...path]
          .map((c, i) =>
            c !== "/" && flips[i % flips.length]
              ? `%${c.charCodeAt(0).toString(16)[i % 2 ? "toUpperCase" : "toLowerCase"]()}`
              : c,
          )
          .join("");
        expect(normalizeRequestPath(encoded)).toEqual(normalizeRequestPath(path));
      }),
      { numRuns: 2000 },
    );
  });
});
