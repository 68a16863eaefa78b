import { describe, expect, it } from "vitest";
import {
  DecryptError,
  decryptField,
  encryptField,
  type FieldRef,
  needsReencryption,
  reencryptField,
} from "./field-encryption";
import { createKeyRing, generateMasterKey } from "./key-ring";

const ref: FieldRef = { table: "connection_credentials", column: "secret", id: "cred_01" };
const keyV1 = generateMasterKey();
const keyV2 = generateMasterKey();
const ringV1 = createKeyRing({ current: 1, keys: [{ version: 1, key: keyV1 }] });
const ringV1V2 = createKeyRing({
  current: 2,
  keys: [
    { version: 1, key: keyV1 },
    { version: 2, key: keyV2 },
  ],
});
const ringV2 = createKeyRing({ current: 2, keys: [{ version: 2, key: keyV2 }] });

function decryptError(run: () => unknown): DecryptError {
  try {
    run();
  } catch (error) {
    if (error instanceof DecryptError) return error;
    throw error;
  }
  throw new Error("expected a DecryptError");
}

describe("field encryption", () => {
  it("round-trips and records the key version", () => {
    const plaintext = "ghp_secret value ✓";
    const sealed = encryptField(ringV1, ref, plaintext);
    expect(sealed).toMatch(/^kw1\.1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
    expect(sealed).not.toContain("secret");
    expect(decryptField(ringV1, ref, sealed)).toBe(plaintext);
    expect(decryptField(ringV1, ref, encryptField(ringV1, ref, ""))).toBe("");
  });

  it("uses a fresh nonce for every encryption", () => {
    const sealed = Array.from({ length: 50 }, () => encryptField(ringV1, ref, "same"));
    const nonces = new Set(sealed.map((value) => value.split(".")[2]));
    expect(nonces.size).toBe(50);
  });

  it.each([
    ["another row", { ...ref, id: "cred_02" }],
    ["another column", { ...ref, column: "refresh_token" }],
    ["another table", { ...ref, table: "integration_targets" }],
  ])("does not decrypt when copied to %s", (_, otherRef) => {
    const sealed = encryptField(ringV1, ref, "value");
    const error = decryptError(() => decryptField(ringV1, otherRef, sealed));
    expect(error.code).toBe("DECRYPT_FAILED");
    expect(error.message).not.toContain("value");
  });

  it("detects a tampered byte in the ciphertext, the tag or the nonce", () => {
    const sealed = encryptField(ringV1, ref, "value");
    const [format = "", version = "", nonce = "", body = ""] = sealed.split(".");
    const flip = (text: string, index: number) => {
      const bytes = Buffer.from(text, "base64url");
      bytes[index] = (bytes[index] ?? 0) ^ 0x01;
      return bytes.toString("base64url");
    };
    for (const tampered of [
      [format, version, nonce, flip(body, 0)],
      [format, version, nonce, flip(body, Buffer.from(body, "base64url").length - 1)],
      [format, version, flip(nonce, 3), body],
    ]) {
      expect(decryptError(() => decryptField(ringV1, ref, tampered.join("."))).code).toBe(
        "DECRYPT_FAILED",
      );
    }
  });

  it("refuses malformed ciphertexts with a stable code", () => {
    for (const bad of [
      "",
      "plain text",
      "kw1.1.abc",
      "kw2.1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
      "kw1.x.a.b",
      "kw1.1.AAAA.AAAAAAAAAAAAAAAAAAAAAA",
    ]) {
      expect(decryptError(() => decryptField(ringV1, ref, bad)).code).toBe("MALFORMED_CIPHERTEXT");
    }
  });

  it("rotates: old ciphertexts decrypt while their key is in the ring and re-encrypt under the newest", () => {
    const old = encryptField(ringV1, ref, "rotate me");
    const notRotated = encryptField(ringV1, { ...ref, id: "cred_02" }, "left behind");

    expect(needsReencryption(ringV1V2, old)).toBe(true);
    expect(decryptField(ringV1V2, ref, old)).toBe("rotate me");
    const rotated = reencryptField(ringV1V2, ref, old);
    expect(rotated.startsWith("kw1.2.")).toBe(true);
    expect(needsReencryption(ringV1V2, rotated)).toBe(false);
    expect(reencryptField(ringV1V2, ref, rotated)).toBe(rotated);

    // The old key is retired.
    expect(decryptField(ringV2, ref, rotated)).toBe("rotate me");
    const error = decryptError(() => decryptField(ringV2, { ...ref, id: "cred_02" }, notRotated));
    expect(error.code).toBe("UNKNOWN_KEY_VERSION");
    expect(error.message).not.toContain("left behind");
  });

  it("refuses to re-encrypt a value that does not belong to the row", () => {
    const old = encryptField(ringV1, ref, "value");
    expect(decryptError(() => reencryptField(ringV1V2, { ...ref, id: "other" }, old)).code).toBe(
      "DECRYPT_FAILED",
    );
  });

  it("refuses field references that would make the associated data ambiguous", () => {
    expect(() => encryptField(ringV1, { table: "a:b", column: "c", id: "1" }, "x")).toThrow(
      TypeError,
    );
    expect(() => encryptField(ringV1, { table: "a", column: "", id: "1" }, "x")).toThrow(TypeError);
  });
});
