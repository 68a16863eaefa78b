import { describe, expect, it } from "vitest";
import { sandboxProxyEnv, sessionStatus } from "./service";

describe("sandboxProxyEnv", () => {
  it("puts the percent-encoded token in the proxy URL's password, in both spellings", () => {
    const env = sandboxProxyEnv("http://gateway.internal:3128/", "a/b:c@d", []);
    const url = "http://session:a%2Fb%3Ac%40d@gateway.internal:3128";
    expect(env).toEqual({
      HTTP_PROXY: url,
      HTTPS_PROXY: url,
      http_proxy: url,
      https_proxy: url,
      NO_PROXY: "localhost,127.0.0.1,::1",
      no_proxy: "localhost,127.0.0.1,::1",
    });
    expect(decodeURIComponent(new URL(url).password)).toBe("a/b:c@d");
  });

  it("leaves out of NO_PROXY a loopback name that a route of the plan names", () => {
    const env = sandboxProxyEnv("http://gateway.internal:3128/", "t", [
      { match: { hosts: ["127.0.0.1:4100"] } },
    ]);
    expect(env.NO_PROXY).toBe("localhost,::1");
    expect(env.no_proxy).toBe("localhost,::1");
  });
});

describe("sessionStatus", () => {
  const row = (expiresAt: string, revokedAt: string | null) => ({
    id: "sess_x",
    organizationId: "org_x",
    profileId: "prof_x",
    profileVersionId: "pver_x",
    planDigest: "d",
    tokenExpiresAt: new Date(expiresAt),
    expiresAt: new Date(expiresAt),
    revokedAt: revokedAt ? new Date(revokedAt) : null,
    createdBy: "tok_x",
    createdAt: new Date("2030-01-01T00:00:00Z"),
  });
  const now = new Date("2030-01-01T01:00:00Z");

  it("is revoked before anything else, expired from the hard end on, else active", () => {
    expect(sessionStatus(row("2030-01-01T02:00:00Z", "2030-01-01T00:30:00Z"), now)).toBe("revoked");
    expect(sessionStatus(row("2030-01-01T01:00:00Z", null), now)).toBe("expired");
    expect(sessionStatus(row("2030-01-01T01:00:01Z", null), now)).toBe("active");
  });
});
