import { auditLog } from "@keyway/db";
import { and, asc, eq } from "drizzle-orm";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeCredentialVersion } from "../credentials/secret-store";
import type { FeedMessage } from "../events/invalidations";
import {
  countAll,
  HTTP_API_CONFIG,
  httpApiBinding,
  insertConnection,
  insertTarget,
  openaiBinding,
  setTargetEnabled,
} from "../profiles/test-fixtures";
import { createTestApp, createTestClock, type TestApp } from "../testing/test-app";
import { CA_BUNDLE_ENV_VARS, loadLiveSession } from "./service";

const clock = createTestClock(new Date("2030-01-01T00:00:00Z"));
const TTL = 900;
const MAX_LIFETIME = 3600;
const SECRET = "sk-proj-SECRET-session-test-77a1e0";

let t: TestApp;
let org: Awaited<ReturnType<TestApp["createOrganization"]>>;
let other: Awaited<ReturnType<TestApp["createOrganization"]>>;
let openaiConn: string;
let httpConn: string;
let profileId: string;

beforeAll(async () => {
  t = await createTestApp({
    clock,
    settings: { sessionTokenTtlSeconds: TTL, sessionMaxLifetimeSeconds: MAX_LIFETIME },
  });
  org = await t.createOrganization("Sessions");
  other = await t.createOrganization("Other");
  openaiConn = await insertConnection(t, org.id, await insertTarget(t, "openai"));
  httpConn = await insertConnection(
    t,
    org.id,
    await insertTarget(t, "http-api", { config: HTTP_API_CONFIG }),
  );
  await t.deps.database.db.transaction((tx) =>
    writeCredentialVersion(tx, t.deps.keyRing, {
      connectionId: openaiConn,
      organizationId: org.id,
      credential: { kind: "secret-fields", fields: { apiKey: SECRET } },
      now: clock.now(),
    }),
  );
  profileId = await newProfileWithVersions("agents", [
    [openaiBinding(openaiConn)],
    [openaiBinding(openaiConn), httpApiBinding(httpConn)],
  ]);
});
afterAll(async () => {
  await t.close();
});

async function newProfileWithVersions(name: string, versions: unknown[][]) {
  const created = await t.call("POST", "/v1/sandbox-profiles", org.member, { name });
  expect(created.status).toBe(201);
  for (const bindings of versions) {
    const v = await t.call("POST", `/v1/sandbox-profiles/${created.body.id}/versions`, org.member, {
      bindings,
    });
    expect(v.status).toBe(201);
  }
  return created.body.id as string;
}

async function start(body: unknown = { profileId }, token = org.member) {
  return t.call("POST", "/v1/sandbox-sessions", token, body);
}

async function verifyToken(token: string) {
  const jwks = await t.call("GET", "/.well-known/jwks.json", undefined);
  expect(jwks.status).toBe(200);
  const { payload } = await jwtVerify(token, createLocalJWKSet(jwks.body), {
    issuer: "keyway",
    audience: "keyway-gateway",
    currentDate: clock.now(),
  });
  return payload;
}

describe("starting a session", () => {
  it("returns a verifiable token bound to the plan, the proxy env and the sandbox material", async () => {
    const now = clock.now();
    const before = await countAll(t);
    const started = await start();
    expect(started.status).toBe(201);
    const s = started.body;
    expect(s.id).toMatch(/^sess_/);
    expect(s.profileVersion).toBe(2);
    expect(new Date(s.expiresAt).getTime()).toBe(now.getTime() + MAX_LIFETIME * 1000);
    // The proxy credential lives as long as the session: running agents cannot reload it.
    expect(s.tokenExpiresAt).toBe(s.expiresAt);

    const plan = await t.call(
      "GET",
      `/v1/sandbox-profiles/${profileId}/versions/2/plan`,
      org.viewer,
    );
    expect(s.planDigest).toBe(plan.body.digest);

    const payload = await verifyToken(s.token);
    expect(payload).toMatchObject({
      sub: s.id,
      org: org.id,
      pln: s.planDigest,
      pv: s.profileVersionId,
      exp: Math.floor(new Date(s.tokenExpiresAt).getTime() / 1000),
    });
    expect(decodeProtectedHeader(s.token).typ).toBe("kw-session+jwt");

    expect(s.proxyUrl).toBe("http://127.0.0.1:8081");
    const proxy = `http://session:${encodeURIComponent(s.token)}@127.0.0.1:8081`;
    expect(s.proxyEnv).toEqual({
      HTTP_PROXY: proxy,
      HTTPS_PROXY: proxy,
      http_proxy: proxy,
      https_proxy: proxy,
      NO_PROXY: "localhost,127.0.0.1,::1",
      no_proxy: "localhost,127.0.0.1,::1",
    });
    expect(s.caCertPem).toContain("BEGIN CERTIFICATE");
    expect(s.caEnvVars).toEqual([...CA_BUNDLE_ENV_VARS]);
    expect(s.files).toEqual(plan.body.plan.files);
    expect(s.files.map((f: { path: string }) => f.path)).toContain(".codex/config.toml");
    expect(s.env).toEqual(plan.body.plan.env);
    expect(s.processes).toEqual(plan.body.plan.processes);
    expect(s.agentRuntimes).toEqual(plan.body.plan.agentRuntimes);
    expect(started.text).not.toContain(SECRET);

    const after = await countAll(t);
    expect(after.sandbox_sessions).toBe(before.sandbox_sessions! + 1);
    const [audit] = await t.deps.database.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.subjectId, s.id), eq(auditLog.action, "session.started")));
    expect(audit?.details).toMatchObject({ planDigest: s.planDigest, version: 2 });

    const live = await loadLiveSession(t.deps.database.db, s.id, clock);
    expect(live?.planDigest).toBe(s.planDigest);
  });

  it("starts on an explicit version", async () => {
    const started = await start({ profileId, version: 1 });
    expect(started.status).toBe(201);
    expect(started.body.profileVersion).toBe(1);
    expect((await verifyToken(started.body.token)).pln).toBe(started.body.planDigest);
  });

  it("needs the member role, a well-formed body and a usable profile version", async () => {
    expect((await start({ profileId }, org.viewer)).status).toBe(403);
    const unknownField = await start({ profileId, ttl: 5 });
    expect(unknownField.status).toBe(400);
    expect(unknownField.body.error.details.issues[0].field).toBe("");
    expect((await start({ profileId, version: "1" })).status).toBe(400);

    const before = await countAll(t);
    const foreign = await start({ profileId }, other.member);
    expect(foreign.status).toBe(422);
    expect(foreign.body.error.code).toBe("profile_not_found");
    const missing = await start({ profileId: "prof_01JAAAAAAAAAAAAAAAAAAAAAAA" });
    expect(missing.body.error.code).toBe("profile_not_found");
    const noVersion = await start({ profileId, version: 7 });
    expect(noVersion.status).toBe(422);
    expect(noVersion.body.error.code).toBe("profile_version_not_found");
    const empty = await t.call("POST", "/v1/sandbox-profiles", org.member, { name: "empty" });
    const none = await start({ profileId: empty.body.id });
    expect(none.status).toBe(422);
    expect(none.body.error.code).toBe("profile_has_no_versions");
    const after = await countAll(t);
    expect({ ...after, sandbox_profiles: 0, audit_log: 0 }).toEqual({
      ...before,
      sandbox_profiles: 0,
      audit_log: 0,
    });
    expect(after.audit_log).toBe(before.audit_log! + 1); // only the "empty" profile's creation
  });

  it("refuses to start on a version that no longer compiles", async () => {
    const target = await insertTarget(t, "http-api", {
      config: { baseUrl: "https://soon-disabled.example.test" },
    });
    const connection = await insertConnection(t, org.id, target);
    const id = await newProfileWithVersions("fragile", [[httpApiBinding(connection)]]);
    await setTargetEnabled(t, target, false);
    const before = await countAll(t);
    const refused = await start({ profileId: id });
    expect(refused.status).toBe(422);
    expect(refused.body.error.code).toBe("target_disabled");
    expect(await countAll(t)).toEqual(before);
  });
});

describe("reading sessions", () => {
  it("lists and reads sessions with their status, never their tokens", async () => {
    const started = await start();
    const list = await t.call("GET", "/v1/sandbox-sessions", org.viewer);
    expect(list.status).toBe(200);
    const item = list.body.items.find((s: { id: string }) => s.id === started.body.id);
    expect(item).toMatchObject({ status: "active", profileId, profileVersion: 2, revokedAt: null });
    expect(list.text).not.toContain(started.body.token);
    const one = await t.call("GET", `/v1/sandbox-sessions/${started.body.id}`, org.viewer);
    expect(one.status).toBe(200);
    expect(one.body).toEqual(item);
    expect(one.text).not.toContain(started.body.token);
    expect(Object.keys(one.body)).not.toContain("token");

    const page = await t.call("GET", "/v1/sandbox-sessions?limit=1", org.viewer);
    expect(page.body.items).toHaveLength(1);
    expect(page.body.nextCursor).toBe(page.body.items[0].id);
    const next = await t.call(
      "GET",
      `/v1/sandbox-sessions?limit=1&before=${page.body.nextCursor}`,
      org.viewer,
    );
    expect(next.body.items[0].id < page.body.items[0].id).toBe(true);
    const filtered = await t.call("GET", `/v1/sandbox-sessions?profileId=${profileId}`, org.viewer);
    for (const s of filtered.body.items) expect(s.profileId).toBe(profileId);
    expect((await t.call("GET", "/v1/sandbox-sessions?limit=0", org.viewer)).status).toBe(400);
  });
});

describe("refresh and expiry", () => {
  it("hands out short tokens until the session's hard end, then refuses with session_expired", async () => {
    const started = await start();
    const id = started.body.id;
    clock.advance(600_000);
    const refreshed = await t.call("POST", `/v1/sandbox-sessions/${id}/refresh`, org.member);
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.token).not.toBe(started.body.token);
    expect(new Date(refreshed.body.tokenExpiresAt).getTime()).toBe(
      clock.now().getTime() + TTL * 1000,
    );
    expect(refreshed.body.expiresAt).toBe(started.body.expiresAt);
    expect(refreshed.body.proxyEnv.HTTPS_PROXY).toContain(encodeURIComponent(refreshed.body.token));
    expect((await verifyToken(refreshed.body.token)).sub).toBe(id);
    expect((await t.call("POST", `/v1/sandbox-sessions/${id}/refresh`, org.viewer)).status).toBe(
      403,
    );

    // 3000 s into a 3600 s session: the token is capped at the session's end.
    clock.advance(2_400_000);
    const capped = await t.call("POST", `/v1/sandbox-sessions/${id}/refresh`, org.member);
    expect(capped.status).toBe(200);
    expect(capped.body.tokenExpiresAt).toBe(started.body.expiresAt);

    clock.advance(600_000);
    const expired = await t.call("POST", `/v1/sandbox-sessions/${id}/refresh`, org.member);
    expect(expired.status).toBe(409);
    expect(expired.body.error.code).toBe("session_expired");
    expect((await t.call("GET", `/v1/sandbox-sessions/${id}`, org.viewer)).body.status).toBe(
      "expired",
    );
    expect(await loadLiveSession(t.deps.database.db, id, clock)).toBeUndefined();
  });
});

describe("revocation", () => {
  it("revokes at once, publishes the invalidation and audits it", async () => {
    const started = await start();
    const id = started.body.id;
    const received = new Promise<FeedMessage>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no invalidation within 5 s")), 5000);
      const unsubscribe = t.deps.invalidations.subscribe((event) => {
        if (event.type === "session.revoked" && event.sessionId === id) {
          clearTimeout(timer);
          unsubscribe();
          resolve(event);
        }
      });
    });
    expect((await t.call("DELETE", `/v1/sandbox-sessions/${id}`, org.viewer)).status).toBe(403);
    expect((await t.call("DELETE", `/v1/sandbox-sessions/${id}`, org.member)).status).toBe(204);
    expect(await received).toEqual({
      type: "session.revoked",
      sessionId: id,
      expiresAt: started.body.expiresAt,
    });

    const read = await t.call("GET", `/v1/sandbox-sessions/${id}`, org.viewer);
    expect(read.body.status).toBe("revoked");
    expect(read.body.revokedAt).toBe(clock.now().toISOString());
    expect(await loadLiveSession(t.deps.database.db, id, clock)).toBeUndefined();
    const refresh = await t.call("POST", `/v1/sandbox-sessions/${id}/refresh`, org.member);
    expect(refresh.status).toBe(409);
    expect(refresh.body.error.code).toBe("session_revoked");

    // Idempotent: a second revoke succeeds and records nothing new.
    const before = await countAll(t);
    expect((await t.call("DELETE", `/v1/sandbox-sessions/${id}`, org.member)).status).toBe(204);
    expect(await countAll(t)).toEqual(before);
    const audits = await t.deps.database.db
      .select({ action: auditLog.action })
      .from(auditLog)
      .where(eq(auditLog.subjectId, id))
      .orderBy(asc(auditLog.seq));
    expect(audits.map((a) => a.action)).toEqual(["session.started", "session.revoked"]);
  });

  it("refuses to delete a profile while a live session uses it", async () => {
    const id = await newProfileWithVersions("in-use", [[openaiBinding(openaiConn)]]);
    const session = await start({ profileId: id });
    const refused = await t.call("DELETE", `/v1/sandbox-profiles/${id}`, org.admin);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("profile_in_use");
    expect(refused.body.error.details.liveSessionIds).toEqual([session.body.id]);
    await t.call("DELETE", `/v1/sandbox-sessions/${session.body.id}`, org.member);
    expect((await t.call("DELETE", `/v1/sandbox-profiles/${id}`, org.admin)).status).toBe(204);
    expect((await t.call("GET", `/v1/sandbox-sessions/${session.body.id}`, org.admin)).status).toBe(
      404,
    );
  });
});

describe("tenant isolation and secrets", () => {
  it("answers 404 to another organization for every session route", async () => {
    const started = await start();
    const id = started.body.id;
    for (const [method, path] of [
      ["GET", `/v1/sandbox-sessions/${id}`],
      ["POST", `/v1/sandbox-sessions/${id}/refresh`],
      ["DELETE", `/v1/sandbox-sessions/${id}`],
    ] as const) {
      const response = await t.call(method, path, other.admin);
      expect(response.status, `${method} ${path}`).toBe(404);
    }
    const list = await t.call("GET", "/v1/sandbox-sessions", other.admin);
    expect(list.body.items).toEqual([]);
    expect((await t.call("GET", `/v1/sandbox-sessions/${id}`, org.viewer)).body.status).toBe(
      "active",
    );
  });

  it("never writes a credential or a session token to the log", async () => {
    const started = await start();
    const logs = t.logger.lines.join("\n");
    expect(logs).not.toContain(SECRET);
    expect(logs).not.toContain(started.body.token);
  });
});
