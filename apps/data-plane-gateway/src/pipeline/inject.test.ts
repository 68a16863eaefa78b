import type { EgressRoute } from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import { createInject, replaceQueryParameter, stripHopByHop } from "./inject";

function route(auth: EgressRoute["auth"], baseUrl = "https://api.upstream.test"): EgressRoute {
  return {
    id: "r1",
    bindingId: "b1",
    match: { hosts: ["api.example.test"] },
    upstream: { baseUrl },
    auth,
    credential: { connectionId: "c1", secretType: "api_key" },
  };
}

function headerMap(flat: string[]): Record<string, string[]> {
  const map: Record<string, string[]> = {};
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!.toLowerCase();
    map[name] = [...(map[name] ?? []), flat[i + 1]!];
  }
  return map;
}

const clientHeaders = [
  "Host",
  "api.example.test",
  "Authorization",
  "Bearer sandbox-placeholder",
  "Proxy-Authorization",
  "Basic c2Vzc2lvbjp0b2tlbg==",
  "Proxy-Connection",
  "keep-alive",
  "Connection",
  "keep-alive, X-Drop-Me",
  "Keep-Alive",
  "timeout=5",
  "X-Drop-Me",
  "1",
  "TE",
  "trailers",
  "Upgrade",
  "h2c",
  "Expect",
  "100-continue",
  "Accept-Encoding",
  "gzip, br",
  "Content-Type",
  "application/json",
  "X-Api-Key",
  "placeholder",
];

describe("injectCredential", () => {
  const inject = createInject();

  it("replaces the client's Authorization with the bearer credential and sets Host", () => {
    const upstream = inject(
      clientHeaders,
      "/v1/x?y=1",
      route({ type: "bearer", name: "authorization", scheme: "Bearer" }),
      "sk-real",
    );
    const headers = headerMap(upstream.headers);
    expect(upstream.origin).toBe("https://api.upstream.test");
    expect(upstream.path).toBe("/v1/x?y=1");
    expect(upstream.headers.slice(0, 2)).toEqual(["host", "api.upstream.test"]);
    expect(headers.authorization).toEqual(["Bearer sk-real"]);
    // The response will be scrubbed of the credential: it must come back uncompressed.
    expect(headers["accept-encoding"]).toEqual(["identity"]);
    expect(headers["content-type"]).toEqual(["application/json"]);
    for (const gone of [
      "proxy-authorization",
      "proxy-connection",
      "connection",
      "keep-alive",
      "x-drop-me",
      "te",
      "upgrade",
      "expect",
    ]) {
      expect(headers[gone], gone).toBeUndefined();
    }
  });

  it("sets a custom header (with optional scheme) and drops the client's copy and Authorization", () => {
    const plain = headerMap(
      inject(clientHeaders, "/", route({ type: "header", name: "x-api-key" }), "k1").headers,
    );
    expect(plain["x-api-key"]).toEqual(["k1"]);
    expect(plain.authorization).toBeUndefined();
    const schemed = headerMap(
      inject(
        clientHeaders,
        "/",
        route({ type: "header", name: "x-api-key", scheme: "Token" }),
        "k2",
      ).headers,
    );
    expect(schemed["x-api-key"]).toEqual(["Token k2"]);
  });

  it("encodes Basic credentials with the route's username", () => {
    const headers = headerMap(
      inject(
        clientHeaders,
        "/",
        route({ type: "basic", name: "authorization", username: "x-access-token" }),
        "ghs_1",
      ).headers,
    );
    expect(headers.authorization).toEqual([
      `Basic ${Buffer.from("x-access-token:ghs_1").toString("base64")}`,
    ]);
  });

  it("hands over a scrubber for the credential in every form the route sent it", () => {
    const patterns = (auth: EgressRoute["auth"], credential: string) =>
      inject([], "/?x=1", route(auth), credential).scrubber?.patterns.map(String);
    expect(patterns({ type: "bearer", name: "authorization", scheme: "Bearer" }, "sk-1")).toEqual([
      "sk-1",
    ]);
    expect(
      patterns({ type: "basic", name: "authorization", username: "x-access-token" }, "ghs_1"),
    ).toEqual(["ghs_1", Buffer.from("x-access-token:ghs_1").toString("base64")]);
    expect(patterns({ type: "query", name: "api_key" }, "s3cr&t/+")).toEqual([
      "s3cr&t/+",
      "s3cr%26t%2F%2B",
    ]);
    expect(patterns({ type: "header", name: "x-api-key" }, 'k"\\1')).toEqual([
      'k"\\1',
      'k\\"\\\\1',
    ]);
  });

  it("builds the scrubber once per credential value", () => {
    const r = route({ type: "bearer", name: "authorization", scheme: "Bearer" });
    const first = inject([], "/", r, "one").scrubber;
    expect(inject([], "/", r, "one").scrubber).toBe(first);
    expect(inject([], "/", r, "two").scrubber).not.toBe(first);
  });

  it("replaces the placeholder query parameter and strips the client's Authorization", () => {
    const upstream = inject(
      clientHeaders,
      "/search?api_key=PLACEHOLDER&q=a%20b&api%5Fkey=again&page=2",
      route({ type: "query", name: "api_key" }),
      "s3cr&t",
    );
    expect(upstream.path).toBe("/search?q=a%20b&page=2&api_key=s3cr%26t");
    expect(headerMap(upstream.headers).authorization).toBeUndefined();
  });

  it("adds nothing for auth none but still strips client credentials", () => {
    const upstream = inject(
      clientHeaders,
      "/a?b",
      route({ type: "none" }, "http://10.0.0.5:8080"),
      null,
    );
    expect(upstream.origin).toBe("http://10.0.0.5:8080");
    expect(upstream.headers.slice(0, 2)).toEqual(["host", "10.0.0.5:8080"]);
    expect(headerMap(upstream.headers).authorization).toBeUndefined();
    expect(upstream.path).toBe("/a?b");
    // Nothing injected, nothing to scrub: compression passes through as the client asked.
    expect(upstream.scrubber).toBeNull();
    expect(headerMap(upstream.headers)["accept-encoding"]).toEqual(["gzip, br"]);
  });

  it("follows a credential change (the header value is memoized per credential)", () => {
    const r = route({ type: "bearer", name: "authorization", scheme: "Bearer" });
    expect(headerMap(inject([], "/", r, "one").headers).authorization).toEqual(["Bearer one"]);
    expect(headerMap(inject([], "/", r, "two").headers).authorization).toEqual(["Bearer two"]);
  });
});

describe("stripHopByHop", () => {
  it("keeps the client's own Authorization for unmanaged hosts", () => {
    const headers = headerMap(stripHopByHop(clientHeaders, "outside.test:8080"));
    expect(headers.host).toEqual(["outside.test:8080"]);
    expect(headers.authorization).toEqual(["Bearer sandbox-placeholder"]);
    expect(headers["proxy-authorization"]).toBeUndefined();
  });
});

describe("replaceQueryParameter", () => {
  it("appends to a path without a query", () => {
    expect(replaceQueryParameter("/x", "key", "key", "v")).toBe("/x?key=v");
  });
});
