import { createRemoteJWKSet } from "jose";

/**
 * How soon after a fetch of the control plane's key set a token naming a key the gateway does not
 * know makes it fetch again. Rotation adds the new key to every API replica before new tokens are
 * signed with it (packages/crypto/README.md), so the first token signed with it finds a set that
 * lacks it and the gateway fetches again; within this long of the previous fetch it would be
 * refused 407 as signed by no known key. One second keeps that window short; forged tokens naming
 * made-up keys then cost the control plane at most one small fetch a second per gateway.
 */
export const SESSION_KEYS_REFETCH_COOLDOWN_MS = 1_000;
/** A set older than this is fetched again before the next token is checked. */
export const SESSION_KEYS_MAX_AGE_MS = 10 * 60_000;
const FETCH_TIMEOUT_MS = 5_000;

/**
 * The control plane's session-signing public keys (`/.well-known/jwks.json`) as the gateway's
 * token verifier reads them: fetched on first use, kept `SESSION_KEYS_MAX_AGE_MS`, fetched again
 * when a token names an unknown key (at most once per `SESSION_KEYS_REFETCH_COOLDOWN_MS`). A
 * fetch that fails is an outage (the verifier rethrows it), never a refusal of the token.
 */
export function remoteSessionKeys(controlPlaneUrl: string): ReturnType<typeof createRemoteJWKSet> {
  return createRemoteJWKSet(new URL(`${controlPlaneUrl}/.well-known/jwks.json`), {
    timeoutDuration: FETCH_TIMEOUT_MS,
    cooldownDuration: SESSION_KEYS_REFETCH_COOLDOWN_MS,
    cacheMaxAge: SESSION_KEYS_MAX_AGE_MS,
  });
}
