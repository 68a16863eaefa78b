import { describe, expect, it } from "vitest";
import type { EgressRoute, RouteMatch } from "../plan/schema";
import { buildRouteIndex, matchRequest } from "./route-index";
import {
  normalizeHost,
  normalizeMethod,
  normalizePathPrefix,
  normalizeRequestPath,
  pathHasPrefix,
  queryIsExcluded,
  routeMatchesRequest,
  routesOverlap,
} from "./route-matcher";

function route(id: string, match: RouteMatch): EgressRoute {
  return {
    id,
    bindingId: "b1",
    match,
    upstream: { baseUrl: "https://upstream.example" },
    auth: { type: "none" },
  };
}

describe("normalizeHost", () => {
  it.each([
    ["api.x.com", "api.x.com"],
    ["API.X.Com", "api.x.com"],
    ["api.x.com:443", "api.x.com"],
    ["api.x.com:80", "api.x.com"],
    ["api.x.com:8443", "api.x.com:8443"],
    ["api.x.com:08443", "api.x.com:8443"],
    ["api.x.com:0443", "api.x.com"],
    ["Api.X.com:8080", "api.x.com:8080"],
    ["api.x.com.", "api.x.com"],
    ["api.x.com.:8443", "api.x.com:8443"],
    ["127.0.0.1:3000", "127.0.0.1:3000"],
    ["localhost", "localhost"],
    ["[::1]", "[::1]"],
    ["[::1]:8443", "[::1]:8443"],
    ["[::1]:443", "[::1]"],
    ["[2001:DB8::1]:80", "[2001:db8::1]"],
  ])("%s -> %s", (input, expected) => {
    expect(normalizeHost(input)).toBe(expected);
  });

  it("returns an already normalized host unchanged", () => {
    const host = "api.github.com:8443";
    expect(normalizeHost(host)).toBe(host);
  });

  it.each([
    "",
    ":443",
    "api.x.com:",
    "api.x.com:0",
    "api.x.com:65536",
    "api.x.com:123456",
    "api.x.com:44a",
    "api.x.com:443:1",
    "user@api.x.com",
    "user:pw@api.x.com",
    "api x.com",
    " api.x.com",
    "api.x.com/",
    "api..x.com",
    ".api.x.com",
    "api.x.com..",
    ".",
    "bücher.de",
    "[::1",
    "[]",
    "[zz::1]",
    "[::1]x",
    "[::1]:",
    "[fe80::1%25eth0]",
    "a".repeat(300),
  ])("refuses %j", (input) => {
    expect(normalizeHost(input)).toBeNull();
  });
});

describe("normalizeMethod", () => {
  it("upper-cases ASCII only", () => {
    expect(normalizeMethod("get")).toBe("GET");
    expect(normalizeMethod("Post")).toBe("POST");
    expect(normalizeMethod("DELETE")).toBe("DELETE");
    // U+017F upper-cases to "S" under Unicode rules; it must not become POST.
    expect(normalizeMethod("po\u017ft")).not.toBe("POST");
  });
});

describe("normalizeRequestPath", () => {
  it.each([
    ["/", "/"],
    ["/v1", "/v1"],
    ["/v1/%7Euser", "/v1/~user"],
    ["/v1/%7euser", "/v1/~user"],
    ["/%41%62%63", "/Abc"],
    ["/a%2db%5Fc%2E%2Ed", "/a-b_c..d"],
    ["/v1/%3a", "/v1/%3A"],
    ["/v1/%3B", "/v1/%3B"],
    ["/v1/%c3%a9", "/v1/%C3%A9"],
    ["/v1/%25", "/v1/%25"],
    ["/v1/%252e%252e", "/v1/%252e%252e"],
    ["/v1?x=1", "/v1"],
    ["/v1?x=/../%2F", "/v1"],
    ["/v1#frag", "/v1"],
    ["/v1/?", "/v1/"],
    ["//", "//"],
    ["/v1//x", "/v1//x"],
    ["/v1/", "/v1/"],
    ["/v1/...", "/v1/..."],
    ["/v1/.a", "/v1/.a"],
    ["/v1/a.", "/v1/a."],
    ["/v1/;x", "/v1/;x"],
    ["/v1/a;..", "/v1/a;.."],
    ["/v1/...%3B", "/v1/...%3B"],
    ["/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="],
    ['/a"b', "/a%22b"],
    ["/a{b}|c", "/a%7Bb%7D%7Cc"],
  ])("%s -> %s", (input, expected) => {
    expect(normalizeRequestPath(input)).toEqual({ ok: true, path: expected });
  });

  it.each([
    ["/v1/./x", "dot_segment"],
    ["/v1/../x", "dot_segment"],
    ["/v1/..", "dot_segment"],
    ["/v1/.", "dot_segment"],
    ["/.", "dot_segment"],
    ["/..", "dot_segment"],
    ["/v1/%2e%2e/admin", "dot_segment"],
    ["/v1/%2E%2E/admin", "dot_segment"],
    ["/v1/.%2e/admin", "dot_segment"],
    ["/v1/%2E./admin", "dot_segment"],
    ["/v1/%2e/admin", "dot_segment"],
    ["/v1/..?x", "dot_segment"],
    ["/v1/..;jsessionid=1/admin", "dot_segment"],
    ["/v1/.;/admin", "dot_segment"],
    ["/v1/..%3B/admin", "dot_segment"],
    ["/v1/%2e%2e%3bx/admin", "dot_segment"],
    ["/v1/a%2Fb", "encoded_slash"],
    ["/v1/a%2fb", "encoded_slash"],
    ["/a\\b", "backslash"],
    ["/a%5Cb", "backslash"],
    ["/a%5cb", "backslash"],
    ["/a%00b", "nul"],
    ["/a\u0000b", "nul"],
    ["/a%zzb", "malformed"],
    ["/a%", "malformed"],
    ["/a%4", "malformed"],
    ["/a%4?x", "malformed"],
    ["", "malformed"],
    ["*", "malformed"],
    ["v1/x", "malformed"],
    ["?x=1", "malformed"],
    ["http://a.com/v1", "malformed"],
    ["/a b", "malformed"],
    ["/a\tb", "malformed"],
    ["/a\u007fb", "malformed"],
    ["/caf\u00e9", "malformed"],
  ])("refuses %j (%s)", (input, reason) => {
    expect(normalizeRequestPath(input)).toEqual({ ok: false, reason });
  });

  it("ignores what follows the query", () => {
    expect(normalizeRequestPath("/v1/x?next=/../admin&p=%2F%00\\")).toEqual({
      ok: true,
      path: "/v1/x",
    });
  });
});

describe("normalizePathPrefix", () => {
  it("normalizes like a request path", () => {
    expect(normalizePathPrefix("/v1/%7euser")).toBe("/v1/~user");
    expect(normalizePathPrefix("/v1/%3b")).toBe("/v1/%3B");
    expect(normalizePathPrefix("/")).toBe("/");
  });

  it("refuses what no accepted request path could match", () => {
    expect(normalizePathPrefix("/v1?x")).toBeNull();
    expect(normalizePathPrefix("/v1#x")).toBeNull();
    expect(normalizePathPrefix("/v1/%2F")).toBeNull();
    expect(normalizePathPrefix("/v1/%2e%2e")).toBeNull();
    expect(normalizePathPrefix("v1")).toBeNull();
    expect(normalizePathPrefix("")).toBeNull();
  });
});

describe("pathHasPrefix", () => {
  it.each([
    ["/v1", "/v1", true],
    ["/v1/x", "/v1", true],
    ["/v1/", "/v1", true],
    ["/v1//x", "/v1", true],
    ["/v10", "/v1", false],
    ["/v1x/y", "/v1", false],
    ["/v", "/v1", false],
    ["/V1", "/v1", false],
    ["/", "/", true],
    ["/anything/at/all", "/", true],
    ["//", "/", true],
    ["/v1/x/y", "/v1/x", true],
    ["/v1/xy", "/v1/x", false],
    ["/v1/x", "/v1/", true],
    ["/v1", "/v1/", false],
    ["/v1", "", false],
  ])("%s has prefix %s: %s", (path, prefix, expected) => {
    expect(pathHasPrefix(path, prefix)).toBe(expected);
  });
});

describe("routeMatchesRequest", () => {
  const match: RouteMatch = {
    hosts: ["api.x.com", "api.x.com:8443"],
    methods: ["GET", "POST"],
    pathPrefixes: ["/v1", "/v2/repos"],
  };
  const req = (host: string, method: string, path: string) => ({ host, method, path });

  it("matches host exactly with significant non-default ports", () => {
    expect(routeMatchesRequest(match, req("api.x.com", "GET", "/v1"))).toBe(true);
    expect(routeMatchesRequest(match, req("api.x.com:8443", "GET", "/v1"))).toBe(true);
    expect(routeMatchesRequest(match, req("api.x.com:9443", "GET", "/v1"))).toBe(false);
    expect(routeMatchesRequest(match, req("x.com", "GET", "/v1"))).toBe(false);
    expect(routeMatchesRequest(match, req("evil-api.x.com", "GET", "/v1"))).toBe(false);
  });

  it("treats the default port as absent through normalizeHost", () => {
    for (const raw of ["api.x.com:443", "API.X.COM:80", "api.x.com."]) {
      const host = normalizeHost(raw);
      expect(host).not.toBeNull();
      expect(routeMatchesRequest(match, req(host ?? "", "GET", "/v1"))).toBe(true);
    }
  });

  it("compares methods case-insensitively; absent methods mean any", () => {
    expect(routeMatchesRequest(match, req("api.x.com", "get", "/v1"))).toBe(true);
    expect(routeMatchesRequest(match, req("api.x.com", "Post", "/v1"))).toBe(true);
    expect(routeMatchesRequest(match, req("api.x.com", "DELETE", "/v1"))).toBe(false);
    const anyMethod: RouteMatch = { hosts: ["api.x.com"] };
    expect(routeMatchesRequest(anyMethod, req("api.x.com", "PURGE", "/whatever"))).toBe(true);
  });

  it("matches prefixes at segment boundaries", () => {
    expect(routeMatchesRequest(match, req("api.x.com", "GET", "/v1/users"))).toBe(true);
    expect(routeMatchesRequest(match, req("api.x.com", "GET", "/v10"))).toBe(false);
    expect(routeMatchesRequest(match, req("api.x.com", "GET", "/v2/repos/a"))).toBe(true);
    expect(routeMatchesRequest(match, req("api.x.com", "GET", "/v2/reposx"))).toBe(false);
    expect(routeMatchesRequest(match, req("api.x.com", "GET", "/v2"))).toBe(false);
  });

  it("normalizes the route's own prefixes and hosts", () => {
    const loose: RouteMatch = { hosts: ["API.x.com:443"], pathPrefixes: ["/v1/%7euser"] };
    expect(routeMatchesRequest(loose, req("api.x.com", "GET", "/v1/~user/x"))).toBe(true);
  });
});

describe("routesOverlap", () => {
  const m = (hosts: string[], methods?: string[], pathPrefixes?: string[]): RouteMatch => ({
    hosts,
    ...(methods ? { methods } : {}),
    ...(pathPrefixes ? { pathPrefixes } : {}),
  });

  it.each([
    ["same route", m(["a.com"]), m(["a.com"]), true],
    ["different hosts", m(["a.com"]), m(["b.com"]), false],
    ["port is significant", m(["a.com"]), m(["a.com:8443"]), false],
    ["one shared host", m(["a.com", "b.com"]), m(["b.com", "c.com"]), true],
    ["disjoint methods", m(["a.com"], ["GET"]), m(["a.com"], ["POST"]), false],
    ["shared method", m(["a.com"], ["GET", "PUT"]), m(["a.com"], ["PUT"]), true],
    ["any method vs some", m(["a.com"]), m(["a.com"], ["DELETE"]), true],
    ["/v1 vs /v10", m(["a.com"], undefined, ["/v1"]), m(["a.com"], undefined, ["/v10"]), false],
    ["/v1 vs /v1/x", m(["a.com"], undefined, ["/v1"]), m(["a.com"], undefined, ["/v1/x"]), true],
    ["/ vs anything", m(["a.com"], undefined, ["/"]), m(["a.com"], undefined, ["/z/y"]), true],
    ["absent vs /w", m(["a.com"]), m(["a.com"], undefined, ["/w"]), true],
    ["siblings", m(["a.com"], undefined, ["/a/x"]), m(["a.com"], undefined, ["/a/y"]), false],
    [
      "encoded spelling",
      m(["a.com"], undefined, ["/~u"]),
      m(["a.com"], undefined, ["/%7Eu"]),
      true,
    ],
    ["method case", m(["a.com"], ["get"]), m(["a.com"], ["GET"]), true],
  ])("%s", (_name, a, b, expected) => {
    expect(routesOverlap(a, b)).toBe(expected);
    expect(routesOverlap(b, a)).toBe(expected);
  });
});

describe("buildRouteIndex", () => {
  const routes = [
    route("root", { hosts: ["api.x.com"], pathPrefixes: ["/"] }),
    route("v1", { hosts: ["api.x.com"], pathPrefixes: ["/v1"] }),
    route("v1-x-get", { hosts: ["api.x.com"], methods: ["GET"], pathPrefixes: ["/v1/x"] }),
    route("v1-x-any", { hosts: ["api.x.com"], pathPrefixes: ["/v1/x"] }),
    route("alt-port", { hosts: ["api.x.com:8443"], pathPrefixes: ["/v1"] }),
    route("two-prefixes", { hosts: ["b.com"], pathPrefixes: ["/a", "/a/b/c"] }),
  ];
  const index = buildRouteIndex(routes);
  const ids = (rs: readonly EgressRoute[]) => rs.map((r) => r.id);
  const req = (host: string, method: string, path: string) => ({ host, method, path });

  it("is frozen", () => {
    expect(Object.isFrozen(index)).toBe(true);
    expect(Object.isFrozen(index.hosts())).toBe(true);
  });

  it("prefers the longest prefix, then plan order", () => {
    expect(index.lookup(req("api.x.com", "GET", "/v1/x/y"))?.id).toBe("v1-x-get");
    expect(ids(index.lookupAll(req("api.x.com", "GET", "/v1/x/y")))).toEqual([
      "v1-x-get",
      "v1-x-any",
      "v1",
      "root",
    ]);
    expect(index.lookup(req("api.x.com", "post", "/v1/x"))?.id).toBe("v1-x-any");
    expect(index.lookup(req("api.x.com", "GET", "/v10"))?.id).toBe("root");
    expect(index.lookup(req("api.x.com", "GET", "/v1/"))?.id).toBe("v1");
    expect(index.lookup(req("api.x.com", "GET", "/"))?.id).toBe("root");
    expect(index.lookup(req("api.x.com:8443", "GET", "/v1/x"))?.id).toBe("alt-port");
    expect(index.lookup(req("api.x.com:8443", "GET", "/v2"))).toBeUndefined();
  });

  it("lists a route once, at its longest matching prefix", () => {
    const more = buildRouteIndex([
      route("short", { hosts: ["b.com"], pathPrefixes: ["/a/b"] }),
      ...routes,
    ]);
    expect(ids(more.lookupAll(req("b.com", "GET", "/a/b/c/d")))).toEqual(["two-prefixes", "short"]);
  });

  it("manages the host of a route whose prefixes no request can match", () => {
    const dead = buildRouteIndex([route("dead", { hosts: ["d.com"], pathPrefixes: ["/a%2Fb"] })]);
    expect(dead.isManagedHost("d.com")).toBe(true);
    expect(dead.lookup(req("d.com", "GET", "/a"))).toBeUndefined();
    expect(matchRequest(dead, { host: "d.com", method: "GET", rawPath: "/a%2Fb" })).toEqual({
      kind: "denied",
      reason: "encoded_slash",
    });
  });

  it("knows its hosts", () => {
    expect(index.hosts()).toEqual(["api.x.com", "api.x.com:8443", "b.com"]);
    expect(index.isManagedHost("api.x.com")).toBe(true);
    expect(index.isManagedHost("api.x.com:9443")).toBe(false);
    expect(index.lookupAll(req("nope.com", "GET", "/"))).toEqual([]);
  });
});

describe("matchRequest", () => {
  const v1 = route("v1", { hosts: ["api.x.com"], methods: ["GET"], pathPrefixes: ["/v1"] });
  const index = buildRouteIndex([v1]);
  const match = (host: string, method: string, rawPath: string) =>
    matchRequest(index, { host, method, rawPath });

  it("matches after normalizing host, method and path", () => {
    expect(match("API.X.COM:443", "get", "/v1/%7Euser?x=1")).toEqual({
      kind: "matched",
      route: v1,
    });
  });

  it("denies a managed host without a matching route", () => {
    expect(match("api.x.com", "GET", "/v10")).toEqual({ kind: "denied", reason: "no_route" });
    expect(match("api.x.com", "POST", "/v1")).toEqual({ kind: "denied", reason: "no_route" });
  });

  it("denies a refused path on a managed host", () => {
    expect(match("api.x.com", "GET", "/v1/%2e%2e/admin")).toEqual({
      kind: "denied",
      reason: "dot_segment",
    });
    expect(match("api.x.com", "GET", "/v1/a%2Fb")).toEqual({
      kind: "denied",
      reason: "encoded_slash",
    });
  });

  it("leaves other hosts unmanaged even with a refused path", () => {
    expect(match("other.com", "GET", "/v1")).toEqual({ kind: "unmanaged" });
    expect(match("api.x.com:8443", "GET", "/v1")).toEqual({ kind: "unmanaged" });
    expect(match("other.com", "GET", "/../etc")).toEqual({ kind: "unmanaged" });
  });

  it("denies a Host that does not parse", () => {
    expect(match("user@api.x.com", "GET", "/v1")).toEqual({
      kind: "denied",
      reason: "malformed_host",
    });
  });
});

describe("queryIsExcluded", () => {
  const receivePack = [{ name: "service", values: ["git-receive-pack"] }];

  it("finds an excluded parameter value, however it is spelled", () => {
    for (const path of [
      "/o/r.git/info/refs?service=git-receive-pack",
      "/o/r.git/info/refs?a=1&service=git-receive-pack",
      "/o/r.git/info/refs?service=GIT-RECEIVE-PACK",
      "/o/r.git/info/refs?service=git%2Dreceive%2Dpack",
      "/o/r.git/info/refs?service=git-upload-pack&service=git-receive-pack",
      "/o/r.git/info/refs?service=%E0%A4%A",
    ]) {
      expect(queryIsExcluded(receivePack, path), path).toBe(true);
    }
  });

  it("lets other values, other names and no query through", () => {
    for (const path of [
      "/o/r.git/info/refs",
      "/o/r.git/info/refs?service=git-upload-pack",
      "/o/r.git/info/refs?services=git-receive-pack",
      "/o/r.git/info/refs?",
    ]) {
      expect(queryIsExcluded(receivePack, path), path).toBe(false);
    }
  });
});
