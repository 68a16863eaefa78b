import { createSecretKey, hkdfSync, type KeyObject, randomBytes } from "node:crypto";
import { z } from "zod";

/** Master keys are 32 random bytes, written as standard base64 (44 characters with padding). */
export const MASTER_KEY_BYTES = 32;

/** Fixed HKDF salt; changing it would change every derived key, so it is versioned in its text. */
const HKDF_SALT = "keyway/key-ring/v1";

/** HKDF `info` strings, one per use of a master key. A purpose never shares a derived key. */
export const KEY_PURPOSES = {
  fieldEncryption: "field-encryption",
  /** HMAC key of the audit chain's signed checkpoints (apps/control-plane-api audit/chain.ts). */
  auditCheckpoint: "audit-checkpoint",
} as const;

export type KeyPurpose = (typeof KEY_PURPOSES)[keyof typeof KEY_PURPOSES];

const base64Of32Bytes = /^[A-Za-z0-9+/]{43}=$/;

/** A base64 master key; the message never repeats the value, which is secret. */
export const masterKeySchema = z
  .string({ error: "expected a base64 string" })
  .refine((value) => base64Of32Bytes.test(value), {
    message: `expected base64 of ${MASTER_KEY_BYTES} bytes`,
  });

const keyVersionSchema = z
  .number({ error: "expected a positive integer" })
  .int("expected a positive integer")
  .min(1, "expected a positive integer");

/**
 * `{ current, keys: [{ version, key }] }`: every key that may still protect stored data, and the
 * version new ciphertexts use. Versions are unique and `current` must be one of them.
 */
export const masterKeyRingSchema = z
  .strictObject({
    current: keyVersionSchema,
    keys: z
      .array(z.strictObject({ version: keyVersionSchema, key: masterKeySchema }))
      .min(1, "expected at least one key"),
  })
  .superRefine((ring, ctx) => {
    const seen = new Set<number>();
    ring.keys.forEach((entry, index) => {
      if (seen.has(entry.version)) {
        ctx.addIssue({
          code: "custom",
          path: ["keys", index, "version"],
          message: `duplicate key version ${entry.version}`,
        });
      }
      seen.add(entry.version);
    });
    if (!seen.has(ring.current)) {
      ctx.addIssue({
        code: "custom",
        path: ["current"],
        message: `no key with version ${ring.current} in keys`,
      });
    }
  });

export type MasterKeyRingConfig = z.infer<typeof masterKeyRingSchema>;

export type KeyRingErrorCode = "INVALID_KEY_RING" | "UNKNOWN_KEY_VERSION";

export class KeyRingError extends Error {
  override readonly name = "KeyRingError";
  constructor(
    readonly code: KeyRingErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A validated master key ring. Raw master keys stay inside the closure: the object has nothing
 * secret to print, serialise or log. Derived keys are `KeyObject`s, which Node never prints either.
 */
export interface KeyRing {
  /** Version used for new ciphertexts. */
  readonly current: number;
  /** All versions in the ring, ascending. */
  readonly versions: readonly number[];
  hasVersion(version: number): boolean;
  /**
   * The 32-byte key for `purpose` derived from master key `version` (default: current) with
   * HKDF-SHA256. Derived once per (version, purpose) and cached.
   */
  deriveKey(purpose: KeyPurpose, version?: number): KeyObject;
}

export function createKeyRing(config: unknown): KeyRing {
  const parsed = masterKeyRingSchema.safeParse(config);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) =>
      issue.path.length > 0 ? `${issue.path.join(".")}: ${issue.message}` : issue.message,
    );
    throw new KeyRingError("INVALID_KEY_RING", `key ring: ${problems.join("; ")}`);
  }
  const masterKeys = new Map<number, Buffer>(
    parsed.data.keys.map((entry) => [entry.version, Buffer.from(entry.key, "base64")]),
  );
  const derived = new Map<string, KeyObject>();
  const current = parsed.data.current;
  const versions = Object.freeze([...masterKeys.keys()].sort((a, b) => a - b));

  return Object.freeze({
    current,
    versions,
    hasVersion: (version: number) => masterKeys.has(version),
    deriveKey(purpose: KeyPurpose, version: number = current): KeyObject {
      const cacheKey = `${version}:${purpose}`;
      const cached = derived.get(cacheKey);
      if (cached) return cached;
      const master = masterKeys.get(version);
      if (!master) {
        throw new KeyRingError(
          "UNKNOWN_KEY_VERSION",
          `key ring has no key with version ${version}`,
        );
      }
      const key = createSecretKey(
        Buffer.from(hkdfSync("sha256", master, HKDF_SALT, purpose, MASTER_KEY_BYTES)),
      );
      derived.set(cacheKey, key);
      return key;
    },
  });
}

/** A fresh random master key, base64-encoded, for a new `[[keys.master.keys]]` entry. */
export function generateMasterKey(): string {
  return randomBytes(MASTER_KEY_BYTES).toString("base64");
}
