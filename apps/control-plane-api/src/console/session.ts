import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { DecryptError, decryptField, encryptField, type KeyRing } from "@keyway/crypto";
import { z } from "zod";

/**
 * The console's sign-in session, kept in one cookie sealed with the key ring (AES-256-GCM, the
 * field encryption the API uses for stored secrets, bound to its own associated data). The cookie
 * carries the bearer credential the user signed in with (an API token, or an OIDC access token),
 * so every replica can serve every request without a session table, and key rotation works as
 * for stored secrets. The browser never sees the credential: the cookie is HttpOnly and opaque.
 */
export const consoleSessionSchema = z.object({
  /** The bearer credential every API call of this session carries. */
  token: z.string().min(1),
  /** Synchronizer token: every form posts it back (`_csrf`). */
  csrf: z.string().min(16),
  principal: z.enum(["operator", "organization"]),
  /** What the header shows: the organization's name, or "Operator". */
  label: z.string(),
  /** Epoch milliseconds after which the session is refused. */
  expiresAt: z.number().int(),
});

export type ConsoleSession = z.infer<typeof consoleSessionSchema>;

const FIELD = { table: "console", column: "session", id: "v1" };

/** Eight hours: a working day; the API credential itself may expire sooner (OIDC). */
export const SESSION_LIFETIME_MS = 8 * 60 * 60 * 1000;

export function newCsrfToken(): string {
  return randomBytes(24).toString("base64url");
}

export function sealSession(ring: KeyRing, session: ConsoleSession): string {
  return encryptField(ring, FIELD, JSON.stringify(session));
}

/** The session in `cookie`, or undefined when it is missing, tampered with, or expired. */
export function openSession(
  ring: KeyRing,
  cookie: string | undefined,
  now: Date,
): ConsoleSession | undefined {
  if (!cookie) return undefined;
  let text: string;
  try {
    text = decryptField(ring, FIELD, cookie);
  } catch (error) {
    if (error instanceof DecryptError) return undefined;
    throw error;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = consoleSessionSchema.safeParse(raw);
  if (!parsed.success || parsed.data.expiresAt <= now.getTime()) return undefined;
  return parsed.data;
}

/** Constant-time comparison of a posted CSRF token with the expected one. */
export function csrfMatches(expected: string, posted: unknown): boolean {
  if (typeof posted !== "string") return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(posted);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** An OIDC sign-in in progress: its state and PKCE verifier, sealed in a 10-minute cookie. */
const oidcRequestSchema = z.object({ state: z.string().min(16), verifier: z.string().min(43) });
const OIDC_FIELD = { table: "console", column: "oidc-request", id: "v1" };

export function sealOidcRequest(ring: KeyRing, request: z.infer<typeof oidcRequestSchema>): string {
  return encryptField(ring, OIDC_FIELD, JSON.stringify(request));
}

export function openOidcRequest(
  ring: KeyRing,
  cookie: string | undefined,
): z.infer<typeof oidcRequestSchema> | undefined {
  if (!cookie) return undefined;
  try {
    const parsed = oidcRequestSchema.safeParse(JSON.parse(decryptField(ring, OIDC_FIELD, cookie)));
    return parsed.success ? parsed.data : undefined;
  } catch (error) {
    if (error instanceof DecryptError || error instanceof SyntaxError) return undefined;
    throw error;
  }
}

/** RFC 7636 S256: base64url(SHA-256(verifier)). */
export function pkceChallenge(verifier: string): string {
  return createHash("sha256").update(verifier).digest("base64url");
}
