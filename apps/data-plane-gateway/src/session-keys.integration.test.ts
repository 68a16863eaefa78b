import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  createSessionTokenSigner,
  createSessionTokenVerifier,
  generateSigningKeyPair,
  type PublicJwks,
  type SigningKeyPair,
  TokenError,
} from "@keyway/crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { remoteSessionKeys, SESSION_KEYS_REFETCH_COOLDOWN_MS } from "./session-keys";

const clock = { now: () => new Date() };
const issuer = "kw";
const audience = "gw";

function signerFor(keys: readonly SigningKeyPair[], current: SigningKeyPair) {
  return createSessionTokenSigner({
    keys: keys.map(({ privateJwk, kid }) => ({ privateJwk, kid })),
    currentKid: current.kid,
    issuer,
    audience,
    clock,
  });
}

const claims = (sessionId: string) => ({
  sessionId,
  organizationId: "org_1",
  planDigest: "sha256:plan",
  profileVersionId: "pv_1",
  expiresAt: new Date(Date.now() + 60_000),
});

/** The control plane's JWKS endpoint on loopback: serves `published`, counts the fetches. */
describe("the gateway's session keys (a real JWKS endpoint on loopback)", () => {
  let server: Server;
  let url: string;
  let published: PublicJwks = { keys: [] };
  let fetches = 0;
  let oldKey: SigningKeyPair;
  let newKey: SigningKeyPair;

  beforeAll(async () => {
    [oldKey, newKey] = await Promise.all([generateSigningKeyPair(), generateSigningKeyPair()]);
    server = createServer((request, response) => {
      if (request.url !== "/.well-known/jwks.json") {
        response.writeHead(404).end();
        return;
      }
      fetches += 1;
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify(published));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.close();
    await once(server, "close");
  });

  it("accepts a token signed with a key added moments after its last fetch (rotation), and refuses forged kids with a bounded number of fetches", async () => {
    published = signerFor([oldKey], oldKey).jwks();
    fetches = 0;
    const verifier = createSessionTokenVerifier({
      issuer,
      audience,
      clock,
      getKey: remoteSessionKeys(url),
    });

    // Before the rotation: tokens of the old key verify; the set is fetched once.
    const before = await verifier.verify(await signerFor([oldKey], oldKey).sign(claims("s_old")));
    expect(before.sessionId).toBe("s_old");
    expect(fetches).toBe(1);

    // Rotation step 1 (every API replica publishes the new key) and step 2 (new tokens are signed
    // with it) happen within seconds of the gateway's fetch: after the cool-down, the first token
    // of the new key makes it fetch again and is accepted, not refused as signed by no known key.
    const rotated = signerFor([oldKey, newKey], newKey);
    published = rotated.jwks();
    await new Promise((resolve) => setTimeout(resolve, SESSION_KEYS_REFETCH_COOLDOWN_MS + 100));
    const after = await verifier.verify(await rotated.sign(claims("s_new")));
    expect(after.sessionId).toBe("s_new");
    expect(fetches).toBe(2);

    // A flood of tokens naming a key nobody published (signed by a stranger) is refused as
    // invalid — 407 for the sandbox — and costs the control plane at most one fetch per cool-down.
    const stranger = await generateSigningKeyPair();
    const forged = await signerFor([stranger], stranger).sign(claims("s_forged"));
    const fetchesBefore = fetches;
    const started = Date.now();
    const outcomes = await Promise.allSettled(
      Array.from({ length: 50 }, () => verifier.verify(forged)),
    );
    for (const outcome of outcomes) {
      expect(outcome.status).toBe("rejected");
      const reason = (outcome as PromiseRejectedResult).reason;
      expect(reason).toBeInstanceOf(TokenError);
      expect((reason as TokenError).code).toBe("TOKEN_INVALID");
    }
    const windows = Math.floor((Date.now() - started) / SESSION_KEYS_REFETCH_COOLDOWN_MS) + 1;
    expect(fetches - fetchesBefore).toBeLessThanOrEqual(windows);
  });
});
