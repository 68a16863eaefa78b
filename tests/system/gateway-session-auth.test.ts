import { readFile } from "node:fs/promises";
import {
  createSessionTokenSigner,
  generateSigningKeyPair,
  parsePrivateKey,
  type SessionTokenClaims,
} from "@keyway/crypto";
import { ProxyAgent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createApiKeyConnection,
  createHttpApiTarget,
  createOrganization,
  curl,
  errorCode,
  type RecordingUpstream,
  type Stack,
  type StartedSession,
  startRecordingUpstream,
  startSession,
  startSessionWith,
  startStack,
  stringAt,
} from "./support/stack";

/**
 * Session tokens against the real control plane's JWKS (SPEC §7, §10): a request without a token,
 * with a malformed, forged or expired one, or with the token of a revoked session gets 407
 * `proxy_auth_required` and never reaches the upstream. Revocation through the real API takes
 * effect within one second (the one timed assertion the gateway issue names).
 */

const API_KEY = "sk-system-auth-5d0e2b";

let stack: Stack;
let upstream: RecordingUpstream;
let orgToken: string;
let organizationId: string;
let profileId: string;
let session: StartedSession;
let gatewayCaPem: string;

beforeAll(async () => {
  stack = await startStack("auth");
  gatewayCaPem = await readFile(stack.gatewayCaPath, "utf8");
  upstream = await startRecordingUpstream(stack.upstreamCa);
  await createHttpApiTarget(stack, "auth-api", { baseUrl: `${upstream.url}/v1` });
  orgToken = await createOrganization(stack, "Auth Org");
  organizationId = stringAt(await stack.apiOk(orgToken, "GET", "/v1/organization"), "id");
  const connectionId = await createApiKeyConnection(stack, orgToken, {
    targetKey: "auth-api",
    secrets: { apiKey: API_KEY },
  });
  const started = await startSessionWith(stack, orgToken, [{ connectionId, kind: "connector" }]);
  session = started;
  profileId = started.profileId;
});

afterAll(async () => {
  await upstream?.close();
  await stack?.close();
});

/** The proxy URL with `token` as the session password. */
function proxyWith(token: string): string {
  const url = new URL(stack.proxyUrl);
  return `http://session:${encodeURIComponent(token)}@${url.host}`;
}

function claimsOf(s: StartedSession, expiresAt: Date): SessionTokenClaims {
  return {
    sessionId: s.id,
    organizationId,
    planDigest: s.planDigest,
    profileVersionId: s.profileVersionId,
    expiresAt,
  };
}

/** A plain-HTTP request through the gateway: answers are the gateway's own (status + body). */
function plainRequest(proxy: string) {
  return curl(["--proxy", proxy, `${upstream.url.replace("https:", "http:")}/v1/ping`]);
}

/** The same over CONNECT: curl reports a refused tunnel as an error naming the status. */
function tunnelRequest(proxy: string) {
  return curl(["--proxy", proxy, "--cacert", stack.gatewayCaPath, `${upstream.url}/v1/ping`]);
}

/**
 * undici's status for a request through the proxy: its ProxyAgent turns a proxy's 407 into an
 * error (for tunnels and absolute-form alike), reported here as the status it names.
 */
function undiciStatus(url: string, dispatcher: ProxyAgent): Promise<string> {
  return request(url, { dispatcher }).then(
    async (response) => {
      await response.body.dump();
      return String(response.statusCode);
    },
    (error: unknown) => (error instanceof Error ? error.message : String(error)),
  );
}

async function expect407(result: Awaited<ReturnType<typeof curl>>, label: string) {
  if (result.status === 0) {
    expect(result.stderr, label).toContain("407");
    return;
  }
  expect(result.status, label).toBe(407);
  expect(result.headers.toLowerCase(), label).toContain('proxy-authenticate: basic realm="keyway"');
  expect(errorCode(result.body), label).toBe("proxy_auth_required");
}

describe("407 proxy_auth_required", () => {
  it("a valid session token passes (the baseline for what follows)", async () => {
    const result = await tunnelRequest(session.proxyUrl);
    expect(result.status).toBe(200);
    expect(upstream.last().headers.authorization).toBe(`Bearer ${API_KEY}`);
  });

  it("refuses a missing, malformed, tampered, forged or expired token", async () => {
    const signing = stack.config.keys.session_signing;
    if (signing === undefined) throw new Error("the development config has a session key");
    const realKey = await parsePrivateKey(signing.keys[0]?.private_key ?? "");
    const issuer = stack.config.sessions.issuer;
    const audience = stack.config.sessions.audience;
    const now = Date.now();

    // Signed by the control plane's own key, for a real session, but already expired.
    const past = createSessionTokenSigner({
      keys: [{ privateJwk: realKey.privateJwk, kid: realKey.kid }],
      currentKid: realKey.kid,
      issuer,
      audience,
      clock: { now: () => new Date(now - 3_600_000) },
    });
    const expired = await past.sign(claimsOf(session, new Date(now - 60_000)));

    // Well formed and live, but signed by a key the control plane never published.
    const stranger = await generateSigningKeyPair();
    const forged = await createSessionTokenSigner({
      keys: [{ privateJwk: stranger.privateJwk, kid: stranger.kid }],
      currentKid: stranger.kid,
      issuer,
      audience,
      clock: { now: () => new Date() },
    }).sign(claimsOf(session, new Date(now + 600_000)));

    const before = upstream.received.length;
    const tampered = `${session.token.slice(0, -6)}AAAAAA`;
    const cases: [string, Promise<Awaited<ReturnType<typeof curl>>>][] = [
      ["missing (plain HTTP)", plainRequest(stack.proxyUrl)],
      ["missing (CONNECT)", tunnelRequest(stack.proxyUrl)],
      ["malformed", plainRequest(proxyWith("not-a-token"))],
      ["tampered signature", plainRequest(proxyWith(tampered))],
      ["forged (unknown key)", tunnelRequest(proxyWith(forged))],
      ["expired", plainRequest(proxyWith(expired))],
    ];
    for (const [label, pending] of cases) await expect407(await pending, label);

    const expiredResult = await plainRequest(proxyWith(expired));
    expect(JSON.parse(expiredResult.body).error.message).toContain("expired");
    expect(upstream.received.length).toBe(before);
  });
});

describe("revocation through the API", () => {
  it("takes effect within one second, closes open tunnels and leaves other sessions alone", async () => {
    const doomed = await startSession(stack, orgToken, profileId);
    const bystander = await startSession(stack, orgToken, profileId);
    const absolute = new ProxyAgent({ uri: doomed.proxyUrl, proxyTunnel: false });
    const tunnelling = new ProxyAgent({ uri: doomed.proxyUrl, requestTls: { ca: gatewayCaPem } });
    const plainUrl = `${upstream.url.replace("https:", "http:")}/v1/poll`;
    try {
      // Warm: the token is verified and cached, a tunnel is open and kept alive.
      expect(await undiciStatus(plainUrl, absolute)).toBe("200");
      expect(await undiciStatus(`${upstream.url}/v1/tunnel`, tunnelling)).toBe("200");

      const revokedAt = performance.now();
      const revoke = await stack.api(orgToken, "DELETE", `/v1/sandbox-sessions/${doomed.id}`);
      expect(revoke.status).toBe(204);
      let status = "200";
      let elapsedMs = 0;
      while (status === "200" && elapsedMs < 5_000) {
        status = await undiciStatus(plainUrl, absolute);
        elapsedMs = performance.now() - revokedAt;
      }
      expect(status).toContain("407");
      expect(elapsedMs).toBeLessThan(1_000);

      // The tunnel opened before the revocation is gone; a new one is refused.
      const before = upstream.received.length;
      expect(await undiciStatus(`${upstream.url}/v1/tunnel`, tunnelling)).toContain("407");
      await expect407(await tunnelRequest(doomed.proxyUrl), "revoked (CONNECT)");
      expect(upstream.received.length).toBe(before);

      const other = await tunnelRequest(bystander.proxyUrl);
      expect(other.status).toBe(200);
    } finally {
      await Promise.all([absolute.close(), tunnelling.close()]);
    }
  });
});
