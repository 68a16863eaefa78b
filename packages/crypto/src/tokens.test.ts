import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { constantTimeEqual, generateToken, hashToken, tokenKind, verifyTokenHash } from "./tokens";

describe("tokens", () => {
  it("mints prefixed tokens with 32 random bytes", () => {
    const operator = generateToken("operator");
    const organization = generateToken("organization");
    expect(operator).toMatch(/^kw_op_[A-Za-z0-9_-]{43}$/);
    expect(organization).toMatch(/^kw_org_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(operator.slice("kw_op_".length), "base64url")).toHaveLength(32);
    expect(generateToken("operator")).not.toBe(operator);
    expect(tokenKind(operator)).toBe("operator");
    expect(tokenKind(organization)).toBe("organization");
    expect(tokenKind("kw_op_short")).toBeUndefined();
    expect(tokenKind(`Bearer ${operator}`)).toBeUndefined();
  });

  it("hashes to SHA-256 hex and verifies in constant time", () => {
    const token = generateToken("organization");
    const hash = hashToken(token);
    expect(hash).toBe(createHash("sha256").update(token).digest("hex"));
    expect(verifyTokenHash(token, hash)).toBe(true);
    expect(verifyTokenHash(token, hash.toUpperCase())).toBe(true);
    expect(verifyTokenHash(generateToken("organization"), hash)).toBe(false);
  });

  it("compares strings of any length", () => {
    expect(constantTimeEqual("abc", "abc")).toBe(true);
    expect(constantTimeEqual("abc", "abd")).toBe(false);
    expect(constantTimeEqual("abc", "abcd")).toBe(false);
    expect(constantTimeEqual("", "")).toBe(true);
  });
});
