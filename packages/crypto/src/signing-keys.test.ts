import { calculateJwkThumbprint } from "jose";
import { describe, expect, it } from "vitest";
import {
  exportPrivateKeyPem,
  exportPublicKeyPem,
  generateSigningKeyPair,
  isEd25519PrivateKeyText,
  parsePrivateKey,
  parsePublicKey,
  SigningKeyError,
} from "./signing-keys";

describe("signing keys", () => {
  it("generates an Ed25519 pair whose kid is the RFC 7638 thumbprint", async () => {
    const pair = await generateSigningKeyPair();
    expect(pair.privateJwk).toMatchObject({ kty: "OKP", crv: "Ed25519" });
    expect(pair.publicJwk).toEqual({ kty: "OKP", crv: "Ed25519", x: pair.privateJwk.x });
    expect(pair.kid).toBe(await calculateJwkThumbprint(pair.publicJwk));
    expect((await generateSigningKeyPair()).kid).not.toBe(pair.kid);
  });

  it("round-trips through PKCS#8 / SPKI PEM and JWK JSON", async () => {
    const pair = await generateSigningKeyPair();
    const privatePem = await exportPrivateKeyPem(pair.privateJwk);
    const publicPem = await exportPublicKeyPem(pair.publicJwk);
    expect(privatePem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(publicPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);

    expect(await parsePrivateKey(privatePem)).toEqual(pair);
    expect(await parsePrivateKey(JSON.stringify(pair.privateJwk))).toEqual(pair);
    expect(await parsePublicKey(publicPem)).toEqual({ kid: pair.kid, publicJwk: pair.publicJwk });
    expect(await parsePublicKey(JSON.stringify({ ...pair.publicJwk, use: "sig" }))).toEqual({
      kid: pair.kid,
      publicJwk: pair.publicJwk,
    });
    expect(isEd25519PrivateKeyText(privatePem)).toBe(true);
    expect(isEd25519PrivateKeyText(JSON.stringify(pair.privateJwk))).toBe(true);
    expect(isEd25519PrivateKeyText(publicPem)).toBe(false);
  });

  it("refuses other keys without echoing them", async () => {
    const pair = await generateSigningKeyPair();
    await expect(parsePublicKey(JSON.stringify(pair.privateJwk))).rejects.toBeInstanceOf(
      SigningKeyError,
    );
    const garbage = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----";
    const error = await parsePrivateKey(garbage).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SigningKeyError);
    expect(String(error)).not.toContain("bm90IGEga2V5");
    await expect(parsePrivateKey("not a key")).rejects.toMatchObject({
      code: "INVALID_SIGNING_KEY",
    });
    await expect(
      parsePrivateKey('{"kty":"OKP","crv":"Ed25519","x":"short"}'),
    ).rejects.toBeInstanceOf(SigningKeyError);
    expect(isEd25519PrivateKeyText("not a key")).toBe(false);
  });
});
