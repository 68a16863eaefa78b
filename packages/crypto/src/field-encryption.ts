import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { KEY_PURPOSES, type KeyRing } from "./key-ring";

/**
 * The row and column a ciphertext belongs to. It is authenticated as associated data
 * (`table:column:id`), so a ciphertext copied to another row, column or table does not decrypt.
 * `table` and `column` may not contain `:`, which keeps the associated data unambiguous.
 */
export interface FieldRef {
  table: string;
  column: string;
  id: string;
}

export type DecryptErrorCode = "DECRYPT_FAILED" | "UNKNOWN_KEY_VERSION" | "MALFORMED_CIPHERTEXT";

/** Decryption failure. The message names the field, never the plaintext, ciphertext or key. */
export class DecryptError extends Error {
  override readonly name = "DecryptError";
  constructor(
    readonly code: DecryptErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const FORMAT = "kw1";
const ALGORITHM = "aes-256-gcm";
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const base64url = /^[A-Za-z0-9_-]*$/;
const versionPattern = /^[1-9][0-9]{0,8}$/;

/**
 * Encrypts `plaintext` under the ring's current key:
 * `kw1.<key version>.<base64url nonce>.<base64url ciphertext || tag>`.
 */
export function encryptField(ring: KeyRing, ref: FieldRef, plaintext: string): string {
  const aad = associatedData(ref);
  const key = ring.deriveKey(KEY_PURPOSES.fieldEncryption, ring.current);
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv(ALGORITHM, key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const body = Buffer.concat([
    cipher.update(plaintext, "utf8"),
    cipher.final(),
    cipher.getAuthTag(),
  ]);
  return `${FORMAT}.${ring.current}.${nonce.toString("base64url")}.${body.toString("base64url")}`;
}

export function decryptField(ring: KeyRing, ref: FieldRef, ciphertext: string): string {
  const sealed = parseCiphertext(ciphertext, ref);
  if (!ring.hasVersion(sealed.version)) {
    throw new DecryptError(
      "UNKNOWN_KEY_VERSION",
      `cannot decrypt ${describe(ref)}: key version ${sealed.version} is not in the key ring`,
    );
  }
  const key = ring.deriveKey(KEY_PURPOSES.fieldEncryption, sealed.version);
  const decipher = createDecipheriv(ALGORITHM, key, sealed.nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(associatedData(ref));
  decipher.setAuthTag(sealed.tag);
  try {
    return Buffer.concat([decipher.update(sealed.body), decipher.final()]).toString("utf8");
  } catch {
    throw new DecryptError(
      "DECRYPT_FAILED",
      `cannot decrypt ${describe(ref)}: authentication failed (wrong row, column or key, or tampered data)`,
    );
  }
}

/** True when `ciphertext` was sealed under a key version other than the ring's current one. */
export function needsReencryption(ring: KeyRing, ciphertext: string): boolean {
  return ciphertextKeyVersion(ciphertext) !== ring.current;
}

/** The key version recorded in a ciphertext; throws `MALFORMED_CIPHERTEXT` if it has none. */
export function ciphertextKeyVersion(ciphertext: string): number {
  const [format, version] = ciphertext.split(".", 2);
  if (format !== FORMAT || version === undefined || !versionPattern.test(version)) {
    throw new DecryptError("MALFORMED_CIPHERTEXT", "ciphertext has no recognised format header");
  }
  return Number(version);
}

/**
 * For `keyway keys rotate`: decrypts (which also proves the value belongs to `ref`) and returns
 * the value sealed under the current key, or the input unchanged when it already uses it, so
 * running a rotation twice rewrites nothing.
 */
export function reencryptField(ring: KeyRing, ref: FieldRef, ciphertext: string): string {
  const plaintext = decryptField(ring, ref, ciphertext);
  if (!needsReencryption(ring, ciphertext)) return ciphertext;
  return encryptField(ring, ref, plaintext);
}

function associatedData(ref: FieldRef): Buffer {
  for (const part of ["table", "column"] as const) {
    if (ref[part] === "" || ref[part].includes(":")) {
      throw new TypeError(`field ${part} must be non-empty and contain no ":"`);
    }
  }
  if (ref.id === "") throw new TypeError("field id must be non-empty");
  return Buffer.from(`${ref.table}:${ref.column}:${ref.id}`, "utf8");
}

function describe(ref: FieldRef): string {
  return `${ref.table}.${ref.column} of ${ref.id}`;
}

function parseCiphertext(ciphertext: string, ref: FieldRef) {
  const malformed = () =>
    new DecryptError(
      "MALFORMED_CIPHERTEXT",
      `cannot decrypt ${describe(ref)}: malformed ciphertext`,
    );
  const [format, version, nonceText, bodyText, extra] = ciphertext.split(".");
  if (format !== FORMAT || version === undefined || !versionPattern.test(version))
    throw malformed();
  if (nonceText === undefined || bodyText === undefined || extra !== undefined) throw malformed();
  if (!base64url.test(nonceText) || !base64url.test(bodyText)) throw malformed();
  const nonce = Buffer.from(nonceText, "base64url");
  const body = Buffer.from(bodyText, "base64url");
  if (nonce.length !== NONCE_BYTES || body.length < TAG_BYTES) throw malformed();
  return {
    version: Number(version),
    nonce,
    body: body.subarray(0, body.length - TAG_BYTES),
    tag: body.subarray(body.length - TAG_BYTES),
  };
}
