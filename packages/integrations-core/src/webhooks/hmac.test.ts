import { describe, expect, it } from "vitest";
import { hmacSha256, timingSafeEqualString, verifyHmacSha256Hex } from "./hmac";

// RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
const RFC4231_CASE2 = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

describe("hmacSha256", () => {
  it("matches the RFC 4231 vector for strings and bytes", () => {
    expect(hmacSha256("Jefe", "what do ya want for nothing?").toString("hex")).toBe(RFC4231_CASE2);
    const key = new TextEncoder().encode("Jefe");
    const data = new TextEncoder().encode("what do ya want for nothing?");
    expect(hmacSha256(key, data).toString("hex")).toBe(RFC4231_CASE2);
  });
});

describe("timingSafeEqualString", () => {
  it("compares equal-length strings", () => {
    expect(timingSafeEqualString("abc", "abc")).toBe(true);
    expect(timingSafeEqualString("abc", "abd")).toBe(false);
    expect(timingSafeEqualString("", "")).toBe(true);
  });

  it("returns false instead of throwing for different lengths", () => {
    expect(timingSafeEqualString("abc", "abcd")).toBe(false);
    expect(timingSafeEqualString("", "a")).toBe(false);
    // Same UTF-16 length, different UTF-8 length.
    expect(timingSafeEqualString("é", "e")).toBe(false);
  });
});

describe("verifyHmacSha256Hex", () => {
  const secret = "Jefe";
  const payload = "what do ya want for nothing?";

  it("accepts a matching signature with or without a prefix, in either hex case", () => {
    expect(verifyHmacSha256Hex({ secret, payload, signatureHex: RFC4231_CASE2 })).toBe(true);
    expect(
      verifyHmacSha256Hex({
        secret,
        payload,
        signatureHex: `sha256=${RFC4231_CASE2}`,
        prefix: "sha256=",
      }),
    ).toBe(true);
    expect(
      verifyHmacSha256Hex({
        secret,
        payload,
        signatureHex: `v0=${RFC4231_CASE2.toUpperCase()}`,
        prefix: "v0=",
      }),
    ).toBe(true);
  });

  it("rejects a wrong payload, secret or signature", () => {
    expect(
      verifyHmacSha256Hex({ secret, payload: `${payload}!`, signatureHex: RFC4231_CASE2 }),
    ).toBe(false);
    expect(verifyHmacSha256Hex({ secret: "jefe", payload, signatureHex: RFC4231_CASE2 })).toBe(
      false,
    );
    const flipped = `${RFC4231_CASE2.slice(0, -1)}4`;
    expect(verifyHmacSha256Hex({ secret, payload, signatureHex: flipped })).toBe(false);
  });

  it("returns false for malformed input instead of throwing", () => {
    const cases: string[] = [
      "",
      "sha256=",
      RFC4231_CASE2.slice(2),
      `${RFC4231_CASE2}00`,
      `${RFC4231_CASE2.slice(0, -1)}g`,
      ` ${RFC4231_CASE2}`,
    ];
    for (const signatureHex of cases) {
      expect(verifyHmacSha256Hex({ secret, payload, signatureHex })).toBe(false);
    }
    // The prefix is required when named, and a different one does not pass.
    expect(
      verifyHmacSha256Hex({ secret, payload, signatureHex: RFC4231_CASE2, prefix: "sha256=" }),
    ).toBe(false);
    expect(
      verifyHmacSha256Hex({
        secret,
        payload,
        signatureHex: `sha1=${RFC4231_CASE2}`,
        prefix: "sha256=",
      }),
    ).toBe(false);
  });

  it("accepts nothing under an empty secret", () => {
    const signatureHex = hmacSha256("", payload).toString("hex");
    expect(verifyHmacSha256Hex({ secret: "", payload, signatureHex })).toBe(false);
  });

  it("never throws on values of the wrong runtime type", () => {
    // Untyped request data reaching the verifier; Reflect.apply skips the compile-time check.
    const bogusInputs = [
      { secret: undefined, payload, signatureHex: RFC4231_CASE2 },
      { secret, payload: 42, signatureHex: RFC4231_CASE2 },
      { secret, payload, signatureHex: null },
    ];
    for (const bogus of bogusInputs) {
      const result: unknown = Reflect.apply(verifyHmacSha256Hex, undefined, [bogus]);
      expect(result).toBe(false);
    }
  });
});
