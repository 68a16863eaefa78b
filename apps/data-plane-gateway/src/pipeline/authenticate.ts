import { type Clock, type SessionTokenVerifier, TokenError } from "@keyway/crypto";
import { GatewayError } from "../errors";
import type { InvalidationHub } from "../invalidations";
import { LruCache } from "../lru-cache";
import type { SessionLiveness } from "../session-liveness";

/**
 * Stage 1 — authenticate: the session token from `Proxy-Authorization` (SPEC §7 "Protocol",
 * "Session"). Sandboxes use `http://session:<token>@gateway:port`, which clients send as
 * `Basic base64("session:<token>")`; `Bearer <token>` is accepted too. Verified tokens are cached
 * by header value until they expire, in an LRU bounded by approximate bytes (a header is ~1.1 KB
 * with its session: 16 MiB keeps ~15,000 sessions in use); whether the session is still live is
 * `SessionLiveness`'s answer (confirmed with the control plane, revocations remembered), checked
 * on every request.
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
  liveness: SessionLiveness;
  /** Approximate bytes of verified header values kept, with their sessions. Default 16 MiB. */
  cacheBytes?: number;
}

export interface Authenticate {
  /** The live session the header proves, or a 407 (502 when the signing keys are unreachable). */
  authenticateSession(proxyAuthorization: string | undefined): Promise<Session>;
  /**
   * The session of an already verified header while it is live, without a promise: the common
   * case of a sandbox's next request. Undefined otherwise — `authenticateSession` then decides.
   */
  cachedSession(proxyAuthorization: string | undefined): Session | undefined;
  /**
   * For requests inside an established tunnel: 407 once the session is revoked or expired; a
   * promise when its liveness must be confirmed again first (after a resync).
   */
  ensureSessionLive(session: Session): undefined | Promise<void>;
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

/** A cached session's heap besides its header: the object, its four id strings, the map entry. */
const SESSION_ENTRY_BYTES = 400;

export function createAuthenticate(options: AuthenticateOptions): Authenticate {
  const { verifier, clock, liveness } = options;
  const verified = new LruCache<string, Session>({
    maxSize: options.cacheBytes ?? 16 * 1024 * 1024,
    sizeOf: (_session, header) => SESSION_ENTRY_BYTES + header.length,
  });
  const verifying = new Map<string, Promise<Session>>();

  function refuseIfEnded(session: Session, nowMs: number): void {
    if (liveness.isRevoked(session.sessionId)) {
      throw new GatewayError("proxy_auth_required", "session has been revoked");
    }
    if (session.expiresAtMs <= nowMs) {
      throw new GatewayError("proxy_auth_required", "session token has expired");
    }
  }

  /** Settles once the session is confirmed live; refuses when it is not. */
  function ensureLive(session: Session): undefined | Promise<void> {
    const nowMs = clock.now().getTime();
    refuseIfEnded(session, nowMs);
    if (liveness.isConfirmed(session.sessionId, nowMs)) return undefined;
    // The plan's digest goes along: a new session's plan can come back with its liveness answer.
    return liveness.confirm(session.sessionId, session.expiresAtMs, session.planDigest);
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
    onEvent() {},
    onResync() {
      // Signing keys may have been retired while the feed was down: verify tokens again.
      verified.clear();
    },
  });

  return {
    async authenticateSession(proxyAuthorization) {
      if (proxyAuthorization === undefined || proxyAuthorization === "") {
        throw new GatewayError("proxy_auth_required", MISSING);
      }
      let session = verified.get(proxyAuthorization);
      if (session === undefined) {
        let pending = verifying.get(proxyAuthorization);
        if (pending === undefined) {
          pending = verify(proxyAuthorization).finally(() => verifying.delete(proxyAuthorization));
          verifying.set(proxyAuthorization, pending);
        }
        session = await pending;
        verified.set(proxyAuthorization, session);
      }
      await ensureLive(session);
      // A revocation may have arrived while liveness was being confirmed.
      refuseIfEnded(session, clock.now().getTime());
      return session;
    },

    cachedSession(proxyAuthorization) {
      if (proxyAuthorization === undefined) return undefined;
      const cached = verified.get(proxyAuthorization);
      if (cached === undefined) return undefined;
      const nowMs = clock.now().getTime();
      if (cached.expiresAtMs <= nowMs || !liveness.isConfirmed(cached.sessionId, nowMs)) {
        return undefined;
      }
      return cached;
    },

    ensureSessionLive: ensureLive,

    close: unsubscribe,
  };
}
