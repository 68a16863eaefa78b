import { decryptField, encryptField, type KeyRing } from "@keyway/crypto";
import { connectionCredentials, type Executor, integrationConnections, newId } from "@keyway/db";
import type { OAuth2TokenSet } from "@keyway/integrations-core";
import { and, eq, isNull } from "drizzle-orm";
import { LRUCache } from "lru-cache";
import { z } from "zod";

/**
 * The only module that encrypts and decrypts stored secrets. Associated data is
 * `table:column:row id`, so a ciphertext moved to another row, column or table does not decrypt.
 */

// ----- target secrets --------------------------------------------------------------------------

const TARGET_SECRETS = { table: "integration_targets", column: "secrets_ciphertext" } as const;

export function encryptTargetSecrets(
  ring: KeyRing,
  targetId: string,
  secrets: Record<string, string>,
): string {
  return encryptField(ring, { ...TARGET_SECRETS, id: targetId }, JSON.stringify(secrets));
}

export function decryptTargetSecrets(
  ring: KeyRing,
  targetId: string,
  ciphertext: string | null,
): Record<string, string> {
  if (ciphertext === null) return {};
  const parsed = z
    .record(z.string(), z.string())
    .parse(JSON.parse(decryptField(ring, { ...TARGET_SECRETS, id: targetId }, ciphertext)));
  return parsed;
}

// ----- connection credentials ------------------------------------------------------------------

const CREDENTIAL_SECRET = { table: "connection_credentials", column: "secret_ciphertext" } as const;

/** What a credential version holds: the secret fields a user gave, or an OAuth2 token set. */
export const storedCredentialSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("secret-fields"), fields: z.record(z.string(), z.string()) }),
  z.object({
    kind: z.literal("oauth2-token-set"),
    accessToken: z.string(),
    refreshToken: z.string().optional(),
    expiresAt: z.string().optional(),
    scope: z.string().optional(),
    tokenType: z.string().optional(),
  }),
]);
export type StoredCredential = z.infer<typeof storedCredentialSchema>;

export function tokenSetCredential(tokens: OAuth2TokenSet): StoredCredential {
  return {
    kind: "oauth2-token-set",
    accessToken: tokens.accessToken,
    ...(tokens.refreshToken !== undefined ? { refreshToken: tokens.refreshToken } : {}),
    ...(tokens.expiresAt !== undefined ? { expiresAt: tokens.expiresAt.toISOString() } : {}),
    ...(tokens.scope !== undefined ? { scope: tokens.scope } : {}),
    ...(tokens.tokenType !== undefined ? { tokenType: tokens.tokenType } : {}),
  };
}

/**
 * Writes a new credential version for a connection (inside the caller's transaction), marks the
 * previous version superseded and moves the connection's `credential_version` forward.
 * Returns the new version number.
 */
export async function writeCredentialVersion(
  tx: Executor,
  ring: KeyRing,
  input: {
    connectionId: string;
    organizationId: string;
    credential: StoredCredential;
    expiresAt?: Date | null;
    now: Date;
  },
): Promise<number> {
  const [connection] = await tx
    .select({ version: integrationConnections.credentialVersion })
    .from(integrationConnections)
    .where(eq(integrationConnections.id, input.connectionId))
    .for("update");
  if (!connection) throw new Error(`connection ${input.connectionId} does not exist`);
  const version = connection.version + 1;
  const id = newId("credential", input.now);
  await tx
    .update(connectionCredentials)
    .set({ supersededAt: input.now })
    .where(
      and(
        eq(connectionCredentials.connectionId, input.connectionId),
        isNull(connectionCredentials.supersededAt),
      ),
    );
  await tx.insert(connectionCredentials).values({
    id,
    connectionId: input.connectionId,
    organizationId: input.organizationId,
    version,
    kind: input.credential.kind,
    secretCiphertext: encryptField(
      ring,
      { ...CREDENTIAL_SECRET, id },
      JSON.stringify(input.credential),
    ),
    expiresAt: input.expiresAt ?? null,
    createdAt: input.now,
  });
  await tx
    .update(integrationConnections)
    .set({ credentialVersion: version, updatedAt: input.now })
    .where(eq(integrationConnections.id, input.connectionId));
  return version;
}

export interface CurrentCredential {
  id: string;
  version: number;
  expiresAt: Date | null;
  credential: StoredCredential;
}

/** The connection's current credential version, decrypted; undefined when it has none. */
export async function readCurrentCredential(
  executor: Executor,
  ring: KeyRing,
  connectionId: string,
): Promise<CurrentCredential | undefined> {
  const [row] = await executor
    .select()
    .from(connectionCredentials)
    .where(
      and(
        eq(connectionCredentials.connectionId, connectionId),
        isNull(connectionCredentials.supersededAt),
      ),
    )
    .limit(1);
  if (!row) return undefined;
  return decryptCredentialVersion(ring, row);
}

/** A credential version row as read (by `readCurrentCredential` or a joined query), decrypted. */
export function decryptCredentialVersion(
  ring: KeyRing,
  row: CredentialVersionRow,
): CurrentCredential {
  const plaintext = decryptField(ring, { ...CREDENTIAL_SECRET, id: row.id }, row.secretCiphertext);
  return {
    id: row.id,
    version: row.version,
    expiresAt: row.expiresAt,
    credential: storedCredentialSchema.parse(JSON.parse(plaintext)),
  };
}

/** A stored credential version row, still encrypted: what `decryptCredentialVersion` takes. */
export interface CredentialVersionRow {
  id: string;
  version: number;
  expiresAt: Date | null;
  secretCiphertext: string;
}

/**
 * Credential versions decrypted once and kept, for the credential-resolution path: a sandbox
 * storm resolves the same few connections' current versions for hundreds of new sessions, and
 * each decryption (AES-GCM set-up, base64, JSON and schema parsing) was ≈ 35 µs of the API's
 * CPU per cold resolution (`pnpm bench:storm`, docs/benchmarks.md). A version row's ciphertext
 * is written once with the row (a new version is a new row); an entry is used only while the row
 * still holds the very ciphertext it was decrypted from, so a row re-encrypted in place
 * (`keyway keys rotate`) is decrypted again. What is kept is what every resolution of the
 * version answers anyway, in this process's memory only, never logged; the bound limits memory.
 */
export interface DecryptedCredentials {
  /** `decryptCredentialVersion`, from memory when this row's ciphertext was decrypted before. */
  decrypt(row: CredentialVersionRow): CurrentCredential;
}

export function createDecryptedCredentials(ring: KeyRing, maxEntries = 1000): DecryptedCredentials {
  const entries = new LRUCache<string, { ciphertext: string; credential: StoredCredential }>({
    max: maxEntries,
  });
  return {
    decrypt(row) {
      const kept = entries.get(row.id);
      if (kept !== undefined && kept.ciphertext === row.secretCiphertext) {
        return {
          id: row.id,
          version: row.version,
          expiresAt: row.expiresAt,
          credential: kept.credential,
        };
      }
      const current = decryptCredentialVersion(ring, row);
      // Shared by every resolution of the version from now on: nobody may change it.
      deepFreeze(current.credential);
      entries.set(row.id, { ciphertext: row.secretCiphertext, credential: current.credential });
      return current;
    },
  };
}

function deepFreeze(value: object): void {
  for (const member of Object.values(value)) {
    if (typeof member === "object" && member !== null) deepFreeze(member);
  }
  Object.freeze(value);
}

// ----- OAuth2 flows ------------------------------------------------------------------------------

const PKCE_VERIFIER = { table: "oauth_sessions", column: "pkce_verifier_ciphertext" } as const;

/** The PKCE verifier of a pending OAuth2 flow, bound to its `oauth_sessions` row. */
export function encryptPkceVerifier(ring: KeyRing, flowId: string, verifier: string): string {
  return encryptField(ring, { ...PKCE_VERIFIER, id: flowId }, verifier);
}

export function decryptPkceVerifier(ring: KeyRing, flowId: string, ciphertext: string): string {
  return decryptField(ring, { ...PKCE_VERIFIER, id: flowId }, ciphertext);
}

// ----- webhook subscription signing secrets ----------------------------------------------------

/**
 * A subscription's current signing secret, and during a rotation overlap the previous one. Each
 * column has its own associated data, so rotating re-encrypts the current secret as the previous
 * one rather than moving the ciphertext.
 */
const SUBSCRIPTION_SECRETS = {
  current: { table: "webhook_subscriptions", column: "secret_ciphertext" },
  previous: { table: "webhook_subscriptions", column: "previous_secret_ciphertext" },
} as const;

export type SubscriptionSecretSlot = keyof typeof SUBSCRIPTION_SECRETS;

export function encryptSubscriptionSecret(
  ring: KeyRing,
  subscriptionId: string,
  slot: SubscriptionSecretSlot,
  secret: string,
): string {
  return encryptField(ring, { ...SUBSCRIPTION_SECRETS[slot], id: subscriptionId }, secret);
}

export function decryptSubscriptionSecret(
  ring: KeyRing,
  subscriptionId: string,
  slot: SubscriptionSecretSlot,
  ciphertext: string,
): string {
  return decryptField(ring, { ...SUBSCRIPTION_SECRETS[slot], id: subscriptionId }, ciphertext);
}

// ----- credentials minted by resolvers (shared until near expiry) -------------------------------

const CACHED_CREDENTIAL = { table: "cached_credentials", column: "value_ciphertext" } as const;

export function encryptCachedCredential(ring: KeyRing, rowId: string, value: string): string {
  return encryptField(ring, { ...CACHED_CREDENTIAL, id: rowId }, value);
}

export function decryptCachedCredential(ring: KeyRing, rowId: string, ciphertext: string): string {
  return decryptField(ring, { ...CACHED_CREDENTIAL, id: rowId }, ciphertext);
}
