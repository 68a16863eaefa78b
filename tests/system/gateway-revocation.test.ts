import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type RunningPostgres, startEmbeddedPostgres } from "@keyway/db";
import { ProxyAgent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createApiKeyConnection,
  createHttpApiTarget,
  createOrganization,
  type GatewayProcess,
  type RecordingUpstream,
  revokeSession as revoke,
  type Stack,
  type StartedSession,
  sendThroughGateway as send,
  startRecordingUpstream,
  startSession,
  startSessionWith,
  startStack,
  untilRefused,
} from "./support/stack";

/**
 * Revocation holds on every gateway, whenever it started (SPEC §7 "Session"): a gateway started
 * after a revocation, one whose event stream was down while it happened, one whose control plane
 * missed the database notification (a PostgreSQL restart), and one that cannot reach the control
 * plane at all (fail closed for sessions it never saw live). And the proxy credential a sandbox
 * starts with lives as long as its session, however short the configured token TTL.
 *
 * In each case another live session on the same plan keeps the gateway's per-plan credential
 * cache warm, so the revoked session is refused because the gateway knows it is revoked, not
 * because a credential happened to be resolved again.
 */

const API_KEY = "sk-system-revocation-7f3a1c";

interface Fixture {
  stack: Stack;
  upstream: RecordingUpstream;
  orgToken: string;
  profileId: string;
  first: StartedSession;
}

async function setUp(label: string, options: Parameters<typeof startStack>[1] = {}) {
  const stack = await startStack(label, options);
  const upstream = await startRecordingUpstream();
  await createHttpApiTarget(stack, "revocation-api", { baseUrl: `${upstream.url}/v1` });
  const orgToken = await createOrganization(stack, `Revocation ${label}`);
  const connectionId = await createApiKeyConnection(stack, orgToken, {
    targetKey: "revocation-api",
    secrets: { apiKey: API_KEY },
  });
  const first = await startSessionWith(stack, orgToken, [{ connectionId, kind: "connector" }]);
  return { stack, upstream, orgToken, profileId: first.profileId, first } satisfies Fixture;
}

async function tearDown(fixture: Fixture | undefined) {
  await fixture?.upstream.close();
  await fixture?.stack.close();
}

/** The session's proxy URL pointed at another gateway (same token). */
function via(gateway: { proxyUrl: string }, session: StartedSession): string {
  const token = new URL(session.proxyUrl).password;
  return `http://session:${token}@${new URL(gateway.proxyUrl).host}`;
}

describe("a gateway that was not listening when the session was revoked", () => {
  let f: Fixture;
  const extra: GatewayProcess[] = [];
  beforeAll(async () => {
    f = await setUp("revoked-before-start");
  });
  afterAll(async () => {
    await Promise.all(extra.map((g) => g.stop()));
    await tearDown(f);
  });

  it("refuses a session revoked before it started, while another session warms the plan", async () => {
    const url = `${f.upstream.url}/v1/ping`;
    const doomed = await startSession(f.stack, f.orgToken, f.profileId);
    expect(await revoke(f.stack.apiUrl, f.orgToken, doomed.id)).toBe(204);

    const late = await f.stack.startGateway();
    extra.push(late);
    // A live session on the same plan resolves and caches the plan's credential first.
    expect(await send(via(late, f.first), url)).toBe("200");
    const before = f.upstream.received.length;
    expect(await send(via(late, doomed), url)).toContain("407");
    // Remembered: asked again, still refused, and nothing reached the upstream.
    expect(await send(via(late, doomed), url)).toContain("407");
    expect(f.upstream.received.length).toBe(before);
    expect(await send(via(late, f.first), url)).toBe("200");
  });

  it("refuses a session revoked on another replica while its event stream was down", async () => {
    const url = `${f.upstream.url}/v1/ping`;
    const doomed = await startSession(f.stack, f.orgToken, f.profileId);
    const bystander = await startSession(f.stack, f.orgToken, f.profileId);
    expect(await send(via(f.stack, doomed), url)).toBe("200");

    const replica = await f.stack.startReplica();
    // The gateway's control plane goes away: its event stream drops, caches are kept.
    await f.stack.stopControlPlane();
    expect(await revoke(replica.url, f.orgToken, doomed.id)).toBe(204);
    await f.stack.restartControlPlane();

    // Another session on the plan warms the credential cache again after the reconnect.
    expect(await send(via(f.stack, bystander), url)).toBe("200");
    expect(await send(via(f.stack, doomed), url)).toContain("407");
  });
});

describe("the proxy credential lives as long as the session", () => {
  let f: Fixture;
  let gatewayCaPem: string;
  beforeAll(async () => {
    // Tokens from `refresh` would expire after 2 s; the one a session starts with must not.
    f = await setUp("long-lived", { env: { KEYWAY_SESSIONS__TOKEN_TTL_SECONDS: "2" } });
    gatewayCaPem = await readFile(f.stack.gatewayCaPath, "utf8");
  });
  afterAll(() => tearDown(f));

  it("keeps one session working past the token TTL, then cuts it within 1 s of revocation", async () => {
    const tlsUpstream = await startRecordingUpstream(f.stack.upstreamCa);
    const connectionId = await createApiKeyConnection(f.stack, f.orgToken, {
      targetKey: "revocation-api",
      secrets: { apiKey: API_KEY },
    });
    await createHttpApiTarget(f.stack, "revocation-tls", { baseUrl: `${tlsUpstream.url}/v1` });
    const tlsConnection = await createApiKeyConnection(f.stack, f.orgToken, {
      targetKey: "revocation-tls",
      secrets: { apiKey: API_KEY },
    });
    const session = await startSessionWith(f.stack, f.orgToken, [
      { connectionId, kind: "connector" },
      { connectionId: tlsConnection, kind: "connector" },
    ]);
    // One client for the whole run, as an agent holds its environment: a kept-alive tunnel.
    const tunnel = new ProxyAgent({ uri: session.proxyUrl, requestTls: { ca: gatewayCaPem } });
    const tunnelStatus = () =>
      request(`${tlsUpstream.url}/v1/tunnel`, { dispatcher: tunnel }).then(
        async (response) => {
          await response.body.dump();
          return String(response.statusCode);
        },
        (error: unknown) => (error instanceof Error ? error.message : String(error)),
      );
    try {
      const plainUrl = `${f.upstream.url}/v1/ping`;
      const until = performance.now() + 4_000;
      while (performance.now() < until) {
        expect(await send(session.proxyUrl, plainUrl)).toBe("200");
        expect(await tunnelStatus()).toBe("200");
        await sleep(250);
      }

      const revokedAt = performance.now();
      expect(await revoke(f.stack.apiUrl, f.orgToken, session.id)).toBe(204);
      const refused = await untilRefused(session.proxyUrl, plainUrl, 5_000);
      expect(refused.answer).toContain("407");
      expect(refused.elapsedMs).toBeLessThan(1_000);
      expect(await tunnelStatus()).not.toBe("200");
      expect(performance.now() - revokedAt).toBeLessThan(2_000);
    } finally {
      await tunnel.close();
      await tlsUpstream.close();
    }
  });

  it("still hands out short tokens from refresh", async () => {
    const session = await startSession(f.stack, f.orgToken, f.profileId);
    const refreshed = await f.stack.apiOk(
      f.orgToken,
      "POST",
      `/v1/sandbox-sessions/${session.id}/refresh`,
    );
    const { token, tokenExpiresAt } = refreshed as { token: string; tokenExpiresAt: string };
    expect(Date.parse(tokenExpiresAt) - Date.now()).toBeLessThanOrEqual(2_000);
    const proxy = via(f.stack, { ...session, proxyUrl: `http://session:${token}@x` });
    expect(await send(proxy, `${f.upstream.url}/v1/ping`)).toBe("200");
    await sleep(2_500);
    expect(await send(proxy, `${f.upstream.url}/v1/ping`)).toContain("407");
  });
});

describe("a control plane that missed the notification (PostgreSQL restarted)", () => {
  let f: Fixture;
  let postgres: RunningPostgres;
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "keyway-revocation-pg-"));
    await chmod(root, 0o755);
    postgres = await startEmbeddedPostgres({ dataDir: join(root, "data"), durable: false });
    await postgres.createDatabase("keyway");
    // The periodic re-check (the backstop) is pushed out of reach: only the control plane's
    // resync, sent when its LISTEN connection comes back, can reveal the revocation here.
    f = await setUp("pg-restart", {
      databaseUrl: postgres.url("keyway"),
      env: { KEYWAY_GATEWAY__LIVENESS__RECHECK_SECONDS: "600" },
    });
  });
  afterAll(async () => {
    await tearDown(f);
    await postgres?.stop();
    await rm(root, { recursive: true, force: true });
  });

  it("refuses a session revoked right after the restart within seconds", async () => {
    const url = `${f.upstream.url}/v1/ping`;
    const doomed = await startSession(f.stack, f.orgToken, f.profileId);
    expect(await send(doomed.proxyUrl, url)).toBe("200");
    expect(await send(f.first.proxyUrl, url)).toBe("200");

    // Down for a few seconds, as when a supervisor restarts a crashed server: long enough for the
    // control plane's LISTEN connection to be retrying when the server returns.
    await postgres.stop();
    await sleep(4_000);
    postgres = await startEmbeddedPostgres({
      dataDir: join(root, "data"),
      port: postgres.port,
      durable: false,
    });
    // As soon as the API can write again: its pool reconnects on the first queries.
    let status = 0;
    for (let i = 0; i < 100 && status !== 204; i++) {
      status = await revoke(f.stack.apiUrl, f.orgToken, doomed.id);
      if (status !== 204) await sleep(100);
    }
    expect(status).toBe(204);

    // The bystander keeps the plan's credential cached on the gateway meanwhile.
    let done = false;
    const keepWarm = (async () => {
      while (!done) {
        await send(f.first.proxyUrl, url);
        await sleep(100);
      }
    })();
    const refused = await untilRefused(doomed.proxyUrl, url, 10_000);
    done = true;
    await keepWarm;
    expect(refused.answer).toContain("407");
    // The LISTEN connection retries at least every 2 s; its return sends the resync.
    expect(refused.elapsedMs).toBeLessThan(4_000);
    expect(await send(f.first.proxyUrl, url)).toBe("200");
  });
});

describe("a gateway that cannot reach the control plane", () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await setUp("fail-closed");
  });
  afterAll(() => tearDown(f));

  it("fails closed for sessions it never saw live, and keeps serving those it did", async () => {
    const url = `${f.upstream.url}/v1/ping`;
    const seen = await startSession(f.stack, f.orgToken, f.profileId);
    const unseen = await startSession(f.stack, f.orgToken, f.profileId);
    expect(await send(seen.proxyUrl, url)).toBe("200");

    await f.stack.stopControlPlane();
    try {
      const before = f.upstream.received.length;
      expect(await send(unseen.proxyUrl, url)).toBe("502 control_plane_unavailable");
      expect(f.upstream.received.length).toBe(before);
      // Seen live before the outage: served from cache within `outage_grace_seconds`.
      expect(await send(seen.proxyUrl, url)).toBe("200");
    } finally {
      await f.stack.restartControlPlane();
    }
    expect(await send(unseen.proxyUrl, url)).toBe("200");
  });
});
