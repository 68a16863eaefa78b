import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import {
  calculateJwkThumbprint,
  exportJWK,
  exportPKCS8,
  exportSPKI,
  generateKeyPair,
  importJWK,
  importPKCS8,
  importSPKI,
} from "jose";
import { z } from "zod";

/** The one signature algorithm Keyway issues and accepts (Ed25519, JOSE name `EdDSA`). */
export const SIGNING_ALGORITHM = "EdDSA";

const base64urlOf32Bytes = z
  .string({ error: "expected a base64url string" })
  .regex(/^[A-Za-z0-9_-]{43}$/, "expected base64url of 32 bytes");

const jwkMetadata = {
  kid: z.string().min(1).optional(),
  alg: z.literal(SIGNING_ALGORITHM).optional(),
  use: z.literal("sig").optional(),
};

/**
 * An Ed25519 public JWK. Members beyond these are dropped; a private member (`d`) is refused so
 * a private key never ends up in a list of trusted public keys.
 */
export const ed25519PublicJwkSchema = z
  .object({
    kty: z.literal("OKP"),
    crv: z.literal("Ed25519"),
    x: base64urlOf32Bytes,
    ...jwkMetadata,
    d: z.never({ error: "a public key was expected but this JWK holds a private key" }).optional(),
  })
  .transform(({ d: _d, ...jwk }) => jwk);

export const ed25519PrivateJwkSchema = z.object({
  kty: z.literal("OKP"),
  crv: z.literal("Ed25519"),
  x: base64urlOf32Bytes,
  d: base64urlOf32Bytes,
  ...jwkMetadata,
});

export type Ed25519PublicJwk = z.infer<typeof ed25519PublicJwkSchema>;
export type Ed25519PrivateJwk = z.infer<typeof ed25519PrivateJwkSchema>;

export interface SigningKeyPair {
  /** RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key. */
  kid: string;
  privateJwk: Ed25519PrivateJwk;
  publicJwk: Ed25519PublicJwk;
}

export class SigningKeyError extends Error {
  override readonly name = "SigningKeyError";
  readonly code = "INVALID_SIGNING_KEY";
}

export async function generateSigningKeyPair(): Promise<SigningKeyPair> {
  const { privateKey } = await generateKeyPair(SIGNING_ALGORITHM, {
    crv: "Ed25519",
    extractable: true,
  });
  return signingKeyPairFromJwk(await exportJWK(privateKey));
}

/** Builds the key pair (public half, kid) from a private JWK; throws `SigningKeyError`. */
export async function signingKeyPairFromJwk(jwk: unknown): Promise<SigningKeyPair> {
  const parsed = ed25519PrivateJwkSchema.safeParse(jwk);
  if (!parsed.success) throw invalidKey("an Ed25519 private JWK");
  const { kty, crv, x, d } = parsed.data;
  const privateJwk: Ed25519PrivateJwk = { kty, crv, x, d };
  const publicJwk = publicJwkOf(privateJwk);
  return { kid: await jwkThumbprint(publicJwk), privateJwk, publicJwk };
}

/** The public half of a private JWK. */
export function publicJwkOf(privateJwk: Ed25519PrivateJwk): Ed25519PublicJwk {
  return { kty: privateJwk.kty, crv: privateJwk.crv, x: privateJwk.x };
}

/** RFC 7638 thumbprint; identical for a private JWK and its public half. */
export function jwkThumbprint(jwk: Ed25519PublicJwk | Ed25519PrivateJwk): Promise<string> {
  return calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x }, "sha256");
}

/**
 * Reads an Ed25519 private key given as PKCS#8 PEM (`BEGIN PRIVATE KEY`) or as JWK JSON.
 * Errors never contain the key text.
 */
export async function parsePrivateKey(text: string): Promise<SigningKeyPair> {
  const trimmed = text.trim();
  if (trimmed.startsWith("{")) return signingKeyPairFromJwk(parseJson(trimmed));
  if (!trimmed.startsWith("-----BEGIN PRIVATE KEY-----")) {
    throw invalidKey("an Ed25519 private key as PKCS#8 PEM or JWK JSON");
  }
  try {
    const key = await importPKCS8(trimmed, SIGNING_ALGORITHM, { extractable: true });
    return await signingKeyPairFromJwk(await exportJWK(key));
  } catch {
    throw invalidKey("an Ed25519 private key as PKCS#8 PEM");
  }
}

/** Reads an Ed25519 public key given as SPKI PEM (`BEGIN PUBLIC KEY`) or as JWK JSON. */
export async function parsePublicKey(
  text: string,
): Promise<{ kid: string; publicJwk: Ed25519PublicJwk }> {
  const trimmed = text.trim();
  let jwk: unknown;
  if (trimmed.startsWith("{")) {
    jwk = parseJson(trimmed);
  } else if (trimmed.startsWith("-----BEGIN PUBLIC KEY-----")) {
    try {
      jwk = await exportJWK(await importSPKI(trimmed, SIGNING_ALGORITHM, { extractable: true }));
    } catch {
      throw invalidKey("an Ed25519 public key as SPKI PEM");
    }
  } else {
    throw invalidKey("an Ed25519 public key as SPKI PEM or JWK JSON");
  }
  const parsed = ed25519PublicJwkSchema.safeParse(jwk);
  if (!parsed.success) throw invalidKey("an Ed25519 public JWK");
  const { kty, crv, x } = parsed.data;
  const publicJwk: Ed25519PublicJwk = { kty, crv, x };
  return { kid: await jwkThumbprint(publicJwk), publicJwk };
}

export async function exportPrivateKeyPem(privateJwk: Ed25519PrivateJwk): Promise<string> {
  const key = await importJWK(privateJwk, SIGNING_ALGORITHM, { extractable: true });
  if (key instanceof Uint8Array) throw invalidKey("an Ed25519 private JWK");
  return exportPKCS8(key);
}

export async function exportPublicKeyPem(publicJwk: Ed25519PublicJwk): Promise<string> {
  const key = await importJWK(publicJwk, SIGNING_ALGORITHM, { extractable: true });
  if (key instanceof Uint8Array) throw invalidKey("an Ed25519 public JWK");
  return exportSPKI(key);
}

/**
 * Synchronous check that `text` is an Ed25519 private key (PKCS#8 PEM or JWK JSON), for
 * validating configuration before anything starts.
 */
export function isEd25519PrivateKeyText(text: string): boolean {
  try {
    const trimmed = text.trim();
    if (trimmed.startsWith("{")) {
      return ed25519PrivateJwkSchema.safeParse(parseJson(trimmed)).success;
    }
    return createPrivateKey(trimmed).asymmetricKeyType === "ed25519";
  } catch {
    return false;
  }
}

/** Node key objects for signing and verifying without an async import on the hot path. */
export function privateKeyObject(privateJwk: Ed25519PrivateJwk): KeyObject {
  return createPrivateKey({ key: { ...privateJwk }, format: "jwk" });
}

export function publicKeyObject(publicJwk: Ed25519PublicJwk): KeyObject {
  return createPublicKey({ key: { ...publicJwk }, format: "jwk" });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw invalidKey("valid JSON");
  }
}

function invalidKey(expected: string): SigningKeyError {
  return new SigningKeyError(`invalid signing key: expected ${expected}`);
}
