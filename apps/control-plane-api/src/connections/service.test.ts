import { describe, expect, it } from "vitest";
import { credentialValueOf } from "./service";

describe("credentialValueOf", () => {
  const apiKeyMethod = { kind: "api-key", secretFields: ["apiToken", "unused"] } as const;

  it("takes the first secret field of an api-key method", () => {
    expect(
      credentialValueOf(apiKeyMethod, {
        kind: "secret-fields",
        fields: { unused: "b", apiToken: "a" },
      }),
    ).toBe("a");
  });

  it("has no value when the first secret field is missing or the method has none", () => {
    expect(
      credentialValueOf(apiKeyMethod, { kind: "secret-fields", fields: { unused: "b" } }),
    ).toBeUndefined();
    expect(
      credentialValueOf({ kind: "api-key" }, { kind: "secret-fields", fields: { x: "y" } }),
    ).toBeUndefined();
  });

  it("takes the access token of an OAuth2 token set", () => {
    expect(
      credentialValueOf(
        { kind: "oauth2-authorization-code" },
        { kind: "oauth2-token-set", accessToken: "at", refreshToken: "rt" },
      ),
    ).toBe("at");
  });

  it("has no direct value for client-credentials secrets, which must be exchanged first", () => {
    expect(
      credentialValueOf(
        { kind: "oauth2-client-credentials", secretFields: ["clientSecret"] },
        { kind: "secret-fields", fields: { clientSecret: "s" } },
      ),
    ).toBeUndefined();
  });
});
