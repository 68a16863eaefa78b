import { describe, expect, it } from "vitest";
import { classifyOAuth2Failure, createOAuthState, createPkcePair, pkceChallenge } from "./oauth2";

describe("PKCE", () => {
  it("computes the S256 challenge of RFC 7636 appendix B", () => {
    expect(pkceChallenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")).toBe(
      "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    );
  });

  it("creates fresh 43-character verifiers with matching challenges", () => {
    const a = createPkcePair();
    const b = createPkcePair();
    expect(a.verifier).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(a.verifier).not.toBe(b.verifier);
    expect(a.challenge).toBe(pkceChallenge(a.verifier));
    expect(createOAuthState()).not.toBe(createOAuthState());
  });
});

describe("classifyOAuth2Failure", () => {
  it.each([
    [400, "invalid_grant", "permanent"],
    [401, "invalid_client", "permanent"],
    [200, "invalid_refresh_token", "permanent"],
    [400, undefined, "permanent"],
    [500, undefined, "temporary"],
    [503, "invalid_grant", "temporary"],
    [429, undefined, "temporary"],
    [400, "temporarily_unavailable", "temporary"],
    [200, "internal_error", "temporary"],
    [200, "service_unavailable", "temporary"],
  ] as const)("HTTP %i with %s is %s", (status, code, kind) => {
    expect(classifyOAuth2Failure(status, code)).toBe(kind);
  });
});
