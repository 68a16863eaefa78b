import { describe, expect, it } from "vitest";
import { hasFragment, parseAuthority, splitAbsoluteForm } from "./authority";

describe("splitAbsoluteForm", () => {
  it("splits authority and path+query, keeping the bytes as sent", () => {
    expect(splitAbsoluteForm("http://api.x.com/v1/a%2Fb?q=1")).toEqual({
      authority: "api.x.com",
      rawPath: "/v1/a%2Fb?q=1",
    });
    expect(splitAbsoluteForm("HTTP://Api.X.com:8080")).toEqual({
      authority: "Api.X.com:8080",
      rawPath: "/",
    });
    expect(splitAbsoluteForm("http://h?x=1")).toEqual({ authority: "h", rawPath: "/?x=1" });
  });

  it("refuses origin-form, other schemes and empty authorities", () => {
    for (const target of ["/path", "https://h/", "ftp://h/", "http:///x", "http://", "h:80"]) {
      expect(splitAbsoluteForm(target), target).toBeNull();
    }
  });
});

describe("parseAuthority", () => {
  it("reads the normalized host, the hostname to connect to, and the port", () => {
    expect(parseAuthority("api.x.com:443", null)).toEqual({
      host: "api.x.com",
      hostname: "api.x.com",
      port: 443,
    });
    expect(parseAuthority("Api.X.com", 80)).toEqual({
      host: "api.x.com",
      hostname: "api.x.com",
      port: 80,
    });
    expect(parseAuthority("api.x.com:8443", null)).toEqual({
      host: "api.x.com:8443",
      hostname: "api.x.com",
      port: 8443,
    });
    expect(parseAuthority("[::1]:8443", null)).toEqual({
      host: "[::1]:8443",
      hostname: "::1",
      port: 8443,
    });
    expect(parseAuthority("[::1]", 80)).toEqual({ host: "[::1]", hostname: "::1", port: 80 });
  });

  it("drops one trailing dot, as the matcher does: a name and an IPv4 address alike", () => {
    expect(parseAuthority("api.x.com.:443", null)).toEqual({
      host: "api.x.com",
      hostname: "api.x.com",
      port: 443,
    });
    expect(parseAuthority("127.0.0.1.:8443", null)).toEqual({
      host: "127.0.0.1:8443",
      hostname: "127.0.0.1",
      port: 8443,
    });
  });

  it("refuses a missing required port, bad ports, bare IPv6 and hosts the matcher refuses", () => {
    for (const bad of [
      "api.x.com",
      "h:0",
      "h:65536",
      "h:x",
      "::1:80",
      "[::1",
      "[::1]x",
      ":80",
      ".:80",
      "a..b:80",
      "user@h:80",
      "h h:80",
    ]) {
      expect(parseAuthority(bad, null), bad).toBeNull();
    }
  });
});

describe("hasFragment", () => {
  it("finds a # anywhere in a request target", () => {
    for (const target of ["/v1#/../admin", "http://h/v1?q#f", "http://h#/v1", "/#"]) {
      expect(hasFragment(target), target).toBe(true);
    }
    for (const target of ["/v1/%23", "http://h/v1?q=%23", "/"]) {
      expect(hasFragment(target), target).toBe(false);
    }
  });
});
