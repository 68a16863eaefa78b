import { describe, expect, it } from "vitest";
import { createKeyRing, generateMasterKey, KEY_PURPOSES, KeyRingError } from "./key-ring";

function ringError(input: unknown): KeyRingError {
  try {
    createKeyRing(input);
  } catch (error) {
    if (error instanceof KeyRingError) return error;
    throw error;
  }
  throw new Error("expected a KeyRingError");
}

describe("createKeyRing", () => {
  it("derives a stable 32-byte key per version and purpose", () => {
    const keyA = generateMasterKey();
    const keyB = generateMasterKey();
    const ring = createKeyRing({
      current: 2,
      keys: [
        { version: 1, key: keyA },
        { version: 2, key: keyB },
      ],
    });
    expect(ring.current).toBe(2);
    expect(ring.versions).toEqual([1, 2]);
    const current = ring.deriveKey(KEY_PURPOSES.fieldEncryption);
    expect(current.symmetricKeySize).toBe(32);
    expect(current.export().equals(ring.deriveKey(KEY_PURPOSES.fieldEncryption, 2).export())).toBe(
      true,
    );
    expect(current.export().equals(ring.deriveKey(KEY_PURPOSES.fieldEncryption, 1).export())).toBe(
      false,
    );
    // The derived key is not the master key itself.
    expect(current.export().toString("base64")).not.toBe(keyB);

    const again = createKeyRing({ current: 2, keys: [{ version: 2, key: keyB }] });
    expect(again.deriveKey(KEY_PURPOSES.fieldEncryption).export()).toEqual(current.export());
  });

  it("refuses an unknown version when deriving", () => {
    const ring = createKeyRing({ current: 1, keys: [{ version: 1, key: generateMasterKey() }] });
    expect(() => ring.deriveKey(KEY_PURPOSES.fieldEncryption, 7)).toThrow(
      expect.objectContaining({ code: "UNKNOWN_KEY_VERSION" }),
    );
  });

  it("names the field in validation errors without echoing key material", () => {
    const secretish = "c2hvcnQ=";
    const error = ringError({ current: 1, keys: [{ version: 1, key: secretish }] });
    expect(error.code).toBe("INVALID_KEY_RING");
    expect(error.message).toBe("key ring: keys.0.key: expected base64 of 32 bytes");
    expect(error.message).not.toContain(secretish);

    expect(
      ringError({ current: 3, keys: [{ version: 1, key: generateMasterKey() }] }).message,
    ).toBe("key ring: current: no key with version 3 in keys");
    const key = generateMasterKey();
    expect(
      ringError({
        current: 1,
        keys: [
          { version: 1, key },
          { version: 1, key },
        ],
      }).message,
    ).toBe("key ring: keys.1.version: duplicate key version 1");
    expect(ringError({ current: 1, keys: [] }).message).toContain(
      "keys: expected at least one key",
    );
    expect(ringError({ current: 0.5, keys: [{ version: 1, key }] }).message).toContain("current:");
  });

  it("has nothing secret to print", () => {
    const key = generateMasterKey();
    const ring = createKeyRing({ current: 1, keys: [{ version: 1, key }] });
    ring.deriveKey(KEY_PURPOSES.fieldEncryption);
    expect(JSON.stringify(ring)).not.toContain(key);
    expect(String(Object.values(ring))).not.toContain(key);
  });
});

describe("generateMasterKey", () => {
  it("returns fresh base64 of 32 bytes", () => {
    const a = generateMasterKey();
    expect(Buffer.from(a, "base64")).toHaveLength(32);
    expect(a).not.toBe(generateMasterKey());
  });
});
