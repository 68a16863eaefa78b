import { createKeyRing, DecryptError, encryptField, generateMasterKey } from "@keyway/crypto";
import { describe, expect, it } from "vitest";
import {
  type CredentialVersionRow,
  createDecryptedCredentials,
  decryptCredentialVersion,
  type StoredCredential,
} from "./secret-store";

const ring = createKeyRing({ current: 1, keys: [{ version: 1, key: generateMasterKey() }] });

function versionRow(id: string, credential: StoredCredential): CredentialVersionRow {
  const secretCiphertext = encryptField(
    ring,
    { table: "connection_credentials", column: "secret_ciphertext", id },
    JSON.stringify(credential),
  );
  return { id, version: 3, expiresAt: null, secretCiphertext };
}

describe("createDecryptedCredentials", () => {
  it("answers what decryptCredentialVersion answers, the second time as well", () => {
    const decrypted = createDecryptedCredentials(ring);
    const row = versionRow("credential_a", { kind: "secret-fields", fields: { apiKey: "sk-1" } });
    const expected = decryptCredentialVersion(ring, row);
    expect(decrypted.decrypt(row)).toEqual(expected);
    expect(decrypted.decrypt({ ...row, version: 4 })).toEqual({ ...expected, version: 4 });
  });

  it("decrypts again when the row holds another ciphertext (re-encrypted in place)", () => {
    const decrypted = createDecryptedCredentials(ring);
    const first = versionRow("credential_b", { kind: "secret-fields", fields: { apiKey: "old" } });
    const second = versionRow("credential_b", { kind: "secret-fields", fields: { apiKey: "new" } });
    expect(decrypted.decrypt(first).credential).toEqual({
      kind: "secret-fields",
      fields: { apiKey: "old" },
    });
    expect(decrypted.decrypt(second).credential).toEqual({
      kind: "secret-fields",
      fields: { apiKey: "new" },
    });
  });

  it("refuses a tampered ciphertext even when the row's earlier one was decrypted", () => {
    const decrypted = createDecryptedCredentials(ring);
    const row = versionRow("credential_c", { kind: "secret-fields", fields: { apiKey: "sk-2" } });
    decrypted.decrypt(row);
    // Another row's ciphertext moved here does not authenticate as this row's.
    const moved = versionRow("credential_d", { kind: "secret-fields", fields: { apiKey: "x" } });
    expect(() => decrypted.decrypt({ ...row, secretCiphertext: moved.secretCiphertext })).toThrow(
      DecryptError,
    );
  });

  it("shares nothing a caller could change for the next resolution", () => {
    const decrypted = createDecryptedCredentials(ring);
    const row = versionRow("credential_e", { kind: "secret-fields", fields: { apiKey: "sk-3" } });
    const first = decrypted.decrypt(row).credential;
    if (first.kind !== "secret-fields") throw new Error("expected secret fields");
    expect(() => {
      first.fields.apiKey = "changed";
    }).toThrow(TypeError);
    expect(decrypted.decrypt(row).credential).toEqual({
      kind: "secret-fields",
      fields: { apiKey: "sk-3" },
    });
  });
});
