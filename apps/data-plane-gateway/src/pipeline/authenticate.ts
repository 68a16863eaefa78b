import { type Clock, type SessionTokenVerifier, TokenError } from "@keyway/crypto";
import { GatewayError } from "../errors";
import type { InvalidationHub } from "../invalidations";
import { LruCache } from "../lru-cache";

/**
 * Stage 1 — authenticate: the session token from `Proxy-Authorization` (SPEC §7 "Protocol",
 * "Session"). Sandboxes use `http://session:<token>@gateway:port`, which clients send as
 * `Basic base64("session:<token>")`; `Bearer <token>` is accepted too. Verified sessions are
 * cached by header value until the token expires; revocations from the event feed apply to the
 * next request (and to open tunnels, see `tunnels.ts`).
 */

export interface Session {
  sessionId: string;
  organizationId: string;
  planDigest: string;
  profileVersionId: string;
  /** Token expiry, epoch milliseconds. */
  expiresAtMs: number;
}

export interface AuthenticateOptions {
  verifier: SessionTokenVerifier;
  clock: Clock;
  invalidations: InvalidationHub;
  /** Verified header values kept. Default 10,000. */
  cacheSize?: number;
  /** How long a revoked session id is remembered: the longest a session may live. Default 24 h. */
  revocationRetentionMs?: number;
}

export interface Authenticate {
  /** The live session the header proves, or a 407 (502 when the signing keys are unreachable). */
  authenticateSession(proxyAuthorization: string | undefined): Promise<Session>;
  /**
   * The session of an already verified header while it is live, without a promise: the common
   * case of a sandbox's next request. Undefined otherwise — `authenticateSession` then decides.
   */
  cachedSession(proxyAuthorization: string | undefined): Session | undefined;
  /** For requests inside an established tunnel: 407 once the session is revoked or expired. */
  assertSessionLive(session: Session): void;
  close(): void;
}

const SESSION_USERNAME = "session";

/**
 * The token in a `Proxy-Authorization` value: `Basic base64("session:<token>")` or
 * `Bearer <token>` (scheme case-insensitive). Null for anything else.
 */
export function parseProxyAuthorization(header: string | undefined): string | null {
  if (header === undefined) return null;
  const value = header.trim();
  const space = value.indexOf(" ");
  if (space < 0) return null;
  const scheme = value.slice(0, space).toLowerCase();
  const credentials = value.slice(space + 1).trim();
  if (credentials === "") return null;
  if (scheme === "bearer") return /^[\x21-\x7e]+$/.test(credentials) ? credentials : null;
  if (scheme !== "basic") return null;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(credentials)) return null;
  const decoded = Buffer.from(credentials, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0 || decoded.slice(0, colon) !== SESSION_USERNAME) return null;
  const token = decoded.slice(colon + 1);
  return /^[\x21-\x7e]+$/.test(token) ? token : null;
}

const MISSING = "proxy authentication required: use http://session:<token>@<gateway>";

export function createAuthenticate(options: AuthenticateOptions): Authenticate {
  const { verifier, clock } = options;
  const retentionMs = options.revocationRetentionMs ?? 24 * 3600_000;
  const verified = new LruCache<string, Session>(options.cacheSize ?? 10_000);
  const verifying = new Map<string, Promise<Session>>();
  /** Revoked session id → when it may be forgotten (epoch ms). */
  const revoked = new Map<string, number>();
  let nextSweepMs = 0;

  function refuseIfNotLive(session: Session, nowMs: number): void {
    if (revoked.has(session.sessionId)) {
      throw new GatewayError("proxy_auth_required", "session has been revoked");
    }
    if (session.expiresAtMs <= nowMs) {
      throw new GatewayError("proxy_auth_required", "session token has expired");
    }
  }

  function revoke(sessionId: string): void {
    const nowMs = clock.now().getTime();
    revoked.set(sessionId, nowMs + retentionMs);
    verified.deleteWhere((session) => session.sessionId === sessionId);
    if (nowMs >= nextSweepMs) {
      nextSweepMs = nowMs + 60_000;
      for (const [id, forgetAtMs] of revoked) if (forgetAtMs <= nowMs) revoked.delete(id);
    }
  }

  async function verify(header: string): Promise<Session> {
    const token = parseProxyAuthorization(header);
    if (token === null) throw new GatewayError("proxy_auth_required", MISSING);
    try {
      const claims = await verifier.verify(token);
      return {
        sessionId: claims.sessionId,
        organizationId: claims.organizationId,
        planDigest: claims.planDigest,
        profileVersionId: claims.profileVersionId,
        expiresAtMs: claims.expiresAt.getTime(),
      };
    } catch (error) {
      if (error instanceof TokenError) {
        const message =
          error.code === "TOKEN_EXPIRED" ? "session token has expired" : "session token is invalid";
        throw new GatewayError("proxy_auth_required", message);
      }
      throw new GatewayError(
        "control_plane_unavailable",
        "session signing keys are unavailable; try again",
        { cause: error },
      );
    }
  }

  const unsubscribe = options.invalidations.subscribe({
    onEvent(event) {
      if (event.type === "session.revoked") revoke(event.sessionId);
    },
    onResync() {
      // Revocations may have been missed: nothing cached may outlive the gap unverified.
      verified.clear();
    },
  });

  return {
    async authenticateSession(proxyAuthorization) {
      if (proxyAuthorization === undefined || proxyAuthorization === "") {
        throw new GatewayError("proxy_auth_required", MISSING);
      }
      const nowMs = clock.now().getTime();
      const cached = verified.get(proxyAuthorization);
      if (cached !== undefined) {
        refuseIfNotLive(cached, nowMs);
        return cached;
      }
      let pending = verifying.get(proxyAuthorization);
      if (pending === undefined) {
        pending = verify(proxyAuthorization).finally(() => verifying.delete(proxyAuthorization));
        verifying.set(proxyAuthorization, pending);
      }
      const session = await pending;
      // A revocation may have arrived while the token was being verified.
      refuseIfNotLive(session, clock.now().getTime());
      verified.set(proxyAuthorization, session);
      return session;
    },

    cachedSession(proxyAuthorization) {
      if (proxyAuthorization === undefined) return undefined;
      const cached = verified.get(proxyAuthorization);
      if (cached === undefined || revoked.has(cached.sessionId)) return undefined;
      return cached.expiresAtMs > clock.now().getTime() ? cached : undefined;
    },

    assertSessionLive(session) {
      refuseIfNotLive(session, clock.now().getTime());
    },

    close: unsubscribe,
  };
}
