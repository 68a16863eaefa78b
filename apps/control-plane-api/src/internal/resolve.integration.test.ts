import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createAdaptorServer } from "@hono/node-server";
import { auditLog, integrationConnections, integrationTargets, sandboxSessions } from "@keyway/db";
import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, createTestClock, type TestApp } from "../testing/test-app";
import {
  type SeededConnection,
  type SeededSession,
  type SeededTarget,
  seedConnection,
  seedOrganization,
  seedSession,
  seedTarget,
} from "./fixtures";

const OPENAI_KEY = "sk-test-openai-resolve-0123456789";

let t: TestApp;
const clock = createTestClock();
let organizationId: string;
let openaiTarget: SeededTarget;
let openai: SeededConnection;

beforeAll(async () => {
  t = await createTestApp({ clock });
  const db = t.deps.database.db;
  organizationId = await seedOrganization(db, t.clock);
  openaiTarget = await seedTarget(db, t.deps, { variantId: "openai" });
  openai = await seedConnection(db, t.deps, {
    organizationId,
    target: openaiTarget,
    methodId: "api-key",
    credential: { kind: "secret-fields", fields: { apiKey: OPENAI_KEY } },
  });
});
afterAll(async () => {
  await t.close();
});

async function openaiSession(connection = openai): Promise<SeededSession> {
  return seedSession(t.deps.database.db, t.deps, {
    organizationId: connection.organizationId,
    bindings: [{ connection, config: { model: "gpt-6.2-sol" } }],
  });
}

async function resolve(sessionId: string, routeId: string) {
  return t.call("POST", "/internal/v1/credentials/resolve", await t.gatewayAssertion(), {
    sessionId,
    routeId,
  });
}

async function auditFor(sessionId: string) {
  return t.deps.database.db
    .select()
    .from(auditLog)
    .where(eq(auditLog.subjectId, sessionId))
    .orderBy(asc(auditLog.seq));
}

describe("GET /internal/v1/plans/{digest}", () => {
  it("serves a stored plan as immutable, and 404 for an unknown digest", async () => {
    const session = await openaiSession();
    const found = await t.call(
      "GET",
      `/internal/v1/plans/${session.planDigest}`,
      await t.gatewayAssertion(),
    );
    expect(found.status).toBe(200);
    expect(found.body).toEqual(session.plan);
    expect(found.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    const unknown = await t.call(
      "GET",
      `/internal/v1/plans/${"0".repeat(64)}`,
      await t.gatewayAssertion(),
    );
    expect(unknown.status).toBe(404);
    const malformed = await t.call(
      "GET",
      "/internal/v1/plans/not-a-digest",
      await t.gatewayAssertion(),
    );
    expect(malformed.status).toBe(400);
  });

  it("needs a valid, unused gateway assertion", async () => {
    const session = await openaiSession();
    const path = `/internal/v1/plans/${session.planDigest}`;
    expect((await t.call("GET", path, undefined)).status).toBe(401);
    expect((await t.call("GET", path, "junk")).status).toBe(401);
    // An organization token is not a gateway assertion.
    expect((await t.call("GET", path, t.operatorToken)).status).toBe(401);
    const assertion = await t.gatewayAssertion();
    expect((await t.call("GET", path, assertion)).status).toBe(200);
    expect((await t.call("GET", path, assertion)).status).toBe(401);
  });
});

describe("POST /internal/v1/credentials/resolve", () => {
  it("returns the stored API key of a route of the session's plan, uncached, and audits it", async () => {
    const session = await openaiSession();
    const route = session.plan.routes[0]!;
    const resolved = await resolve(session.sessionId, route.id);
    expect(resolved.status).toBe(200);
    expect(resolved.body).toEqual({ value: OPENAI_KEY, expiresAt: null, credentialVersion: 1 });
    expect(resolved.headers.get("cache-control")).toBe("no-store");

    const [entry] = await auditFor(session.sessionId);
    expect(entry).toMatchObject({
      action: "credential.resolved",
      organizationId,
      actor: "gateway:gateway-test",
      subjectType: "sandbox_session",
      details: {
        sessionId: session.sessionId,
        routeId: route.id,
        connectionId: openai.id,
        gatewayId: "gateway-test",
        credentialVersion: 1,
      },
    });
    expect(entry?.traceId).toBe(resolved.headers.get("x-request-id"));
    expect(JSON.stringify(entry)).not.toContain(OPENAI_KEY);
    expect(t.logger.lines.join("\n")).not.toContain(OPENAI_KEY);
  });

  it("audits each of many concurrent resolutions once, with its own trace and outcome", async () => {
    // Concurrent resolutions share audit inserts (and assertion claims): every caller still gets
    // its own answer only once its own entry is stored, refusals included.
    const sessions = await Promise.all(Array.from({ length: 12 }, () => openaiSession()));
    const revoked = sessions[11]!;
    await t.deps.database.db
      .update(sandboxSessions)
      .set({ revokedAt: t.clock.now() })
      .where(eq(sandboxSessions.id, revoked.sessionId));
    const traceIds = sessions.map(
      (_, i) => `${(i + 1).toString(16).padStart(2, "0")}${"a".repeat(30)}`,
    );
    const answers = await Promise.all(
      sessions.map(async (session, i) =>
        t.call(
          "POST",
          "/internal/v1/credentials/resolve",
          await t.gatewayAssertion(),
          { sessionId: session.sessionId, routeId: session.plan.routes[0]!.id },
          { traceparent: `00-${traceIds[i]}-${"b".repeat(16)}-01` },
        ),
      ),
    );
    expect(answers.map((answer) => answer.status)).toEqual([...Array(11).fill(200), 403]);
    for (const [i, session] of sessions.entries()) {
      const entries = await auditFor(session.sessionId);
      expect(entries).toHaveLength(1);
      expect(entries[0]).toMatchObject({
        action: i === 11 ? "credential.refused" : "credential.resolved",
        traceId: traceIds[i],
        details: { sessionId: session.sessionId },
      });
    }
  });

  it("hands out the newest credential version after a rotation", async () => {
    const target = await seedTarget(t.deps.database.db, t.deps, { variantId: "openai" });
    const connection = await seedConnection(t.deps.database.db, t.deps, {
      organizationId,
      target,
      methodId: "api-key",
      credential: { kind: "secret-fields", fields: { apiKey: "sk-first" } },
    });
    const session = await openaiSession(connection);
    // Resolved once first: the API keeps the decrypted version, which must not outlive it.
    const first = await resolve(session.sessionId, session.plan.routes[0]!.id);
    expect(first.body).toEqual({ value: "sk-first", expiresAt: null, credentialVersion: 1 });
    const { writeCredentialVersion } = await import("../credentials/secret-store");
    await t.deps.database.db.transaction((tx) =>
      writeCredentialVersion(tx, t.deps.keyRing, {
        connectionId: connection.id,
        organizationId,
        credential: { kind: "secret-fields", fields: { apiKey: "sk-second" } },
        now: t.clock.now(),
      }),
    );
    const resolved = await resolve(session.sessionId, session.plan.routes[0]!.id);
    expect(resolved.body).toEqual({ value: "sk-second", expiresAt: null, credentialVersion: 2 });
  });

  it("refuses a route that is not in the session's own plan", async () => {
    const mine = await openaiSession();
    // A real route of another plan (another binding id): the gateway may not borrow it.
    const other = await openaiSession();
    const refused = await resolve(mine.sessionId, other.plan.routes[0]!.id);
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe("route_not_in_plan");
    expect(refused.text).not.toContain(OPENAI_KEY);
    const [entry] = await auditFor(mine.sessionId);
    expect(entry).toMatchObject({
      action: "credential.refused",
      details: { reason: "route_not_in_plan", code: "route_not_in_plan" },
    });
  });

  it("refuses an unknown session, audited without an organization", async () => {
    const refused = await resolve("sess_01JUNKJUNKJUNKJUNKJUNKJUNK", "x.route.0");
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe("session_not_live");
    const [entry] = await auditFor("sess_01JUNKJUNKJUNKJUNKJUNKJUNK");
    expect(entry).toMatchObject({
      action: "credential.refused",
      organizationId: null,
      details: { reason: "session_not_found" },
    });
  });

  it("refuses a revoked session", async () => {
    const session = await openaiSession();
    await t.deps.database.db
      .update(sandboxSessions)
      .set({ revokedAt: t.clock.now() })
      .where(eq(sandboxSessions.id, session.sessionId));
    const refused = await resolve(session.sessionId, session.plan.routes[0]!.id);
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe("session_not_live");
    expect((await auditFor(session.sessionId))[0]).toMatchObject({
      action: "credential.refused",
      organizationId,
      details: { reason: "session_revoked", connectionId: null },
    });
  });

  it("refuses an expired session", async () => {
    const session = await openaiSession();
    const routeId = session.plan.routes[0]!.id;
    const start = t.clock.now();
    try {
      // Past the session's hard end (24 h after it started).
      clock.advance(24 * 3600 * 1000 + 1000);
      const refused = await resolve(session.sessionId, routeId);
      expect(refused.status).toBe(403);
      expect(refused.body.error.code).toBe("session_not_live");
    } finally {
      clock.set(start);
    }
    expect((await auditFor(session.sessionId))[0]).toMatchObject({
      action: "credential.refused",
      details: { reason: "session_expired" },
    });
    expect((await resolve(session.sessionId, routeId)).status).toBe(200);
  });

  it("refuses while the route's target is disabled", async () => {
    const target = await seedTarget(t.deps.database.db, t.deps, { variantId: "openai" });
    const connection = await seedConnection(t.deps.database.db, t.deps, {
      organizationId,
      target,
      methodId: "api-key",
      credential: { kind: "secret-fields", fields: { apiKey: "sk-disabled" } },
    });
    const session = await openaiSession(connection);
    await t.deps.database.db
      .update(integrationTargets)
      .set({ enabled: false })
      .where(eq(integrationTargets.id, target.id));
    const refused = await resolve(session.sessionId, session.plan.routes[0]!.id);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("target_disabled");
    expect(refused.text).not.toContain("sk-disabled");
    expect((await auditFor(session.sessionId))[0]).toMatchObject({
      action: "credential.refused",
      details: { reason: "target_disabled", connectionId: connection.id },
    });
  });

  it("refuses a connection in error or revoked", async () => {
    for (const status of ["error", "revoked"] as const) {
      const connection = await seedConnection(t.deps.database.db, t.deps, {
        organizationId,
        target: openaiTarget,
        methodId: "api-key",
        credential: { kind: "secret-fields", fields: { apiKey: `sk-${status}` } },
      });
      const session = await openaiSession(connection);
      await t.deps.database.db
        .update(integrationConnections)
        .set({ status })
        .where(eq(integrationConnections.id, connection.id));
      const refused = await resolve(session.sessionId, session.plan.routes[0]!.id);
      expect(refused.status).toBe(409);
      expect(refused.body.error.code).toBe("connection_not_active");
      expect((await auditFor(session.sessionId))[0]).toMatchObject({
        action: "credential.refused",
        details: { reason: `connection_${status}`, code: "connection_not_active" },
      });
    }
  });

  it("never follows a plan to another organization's connection", async () => {
    const session = await openaiSession();
    const otherOrganization = await seedOrganization(t.deps.database.db, t.clock, "Other");
    await t.deps.database.db
      .update(sandboxSessions)
      .set({ organizationId: otherOrganization })
      .where(eq(sandboxSessions.id, session.sessionId));
    const refused = await resolve(session.sessionId, session.plan.routes[0]!.id);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("connection_not_active");
    expect(refused.text).not.toContain(OPENAI_KEY);
  });

  it("answers 502 credential_unavailable when the connection has no credential", async () => {
    const connection = await seedConnection(t.deps.database.db, t.deps, {
      organizationId,
      target: openaiTarget,
      methodId: "api-key",
    });
    const session = await openaiSession(connection);
    const refused = await resolve(session.sessionId, session.plan.routes[0]!.id);
    expect(refused.status).toBe(502);
    expect(refused.body.error.code).toBe("credential_unavailable");
    expect((await auditFor(session.sessionId))[0]).toMatchObject({
      details: { reason: "no_stored_credential" },
    });
  });

  it("answers bad bodies with 400 and missing assertions with 401", async () => {
    const assertion = await t.gatewayAssertion();
    const extra = await t.call("POST", "/internal/v1/credentials/resolve", assertion, {
      sessionId: "s",
      routeId: "r",
      connectionId: "conn_x",
    });
    expect(extra.status).toBe(400);
    const missing = await t.call(
      "POST",
      "/internal/v1/credentials/resolve",
      await t.gatewayAssertion(),
      {
        sessionId: "s",
      },
    );
    expect(missing.status).toBe(400);
    expect(missing.body.error.details.issues.map((i: { field: string }) => i.field)).toEqual([
      "routeId",
    ]);
    const huge = await t.call(
      "POST",
      "/internal/v1/credentials/resolve",
      await t.gatewayAssertion(),
      {
        sessionId: "s".repeat(20_000),
        routeId: "r",
      },
    );
    expect(huge.status).toBe(413);
    const none = await t.call("POST", "/internal/v1/credentials/resolve", undefined, {
      sessionId: "s",
      routeId: "r",
    });
    expect(none.status).toBe(401);
  });
});

describe("POST /internal/v1/credentials/resolve-batch", () => {
  async function resolveBatch(items: unknown) {
    return t.call("POST", "/internal/v1/credentials/resolve-batch", await t.gatewayAssertion(), {
      items,
    });
  }

  it("answers each item as the single route would, audited under its own trace id", async () => {
    const [granted, revoked, wrongRoute, inError] = await Promise.all(
      Array.from({ length: 4 }, () => openaiSession()),
    );
    await t.deps.database.db
      .update(sandboxSessions)
      .set({ revokedAt: t.clock.now() })
      .where(eq(sandboxSessions.id, revoked!.sessionId));
    const broken = await seedConnection(t.deps.database.db, t.deps, {
      organizationId,
      target: openaiTarget,
      methodId: "api-key",
      credential: { kind: "secret-fields", fields: { apiKey: "sk-broken" } },
    });
    const brokenSession = await openaiSession(broken);
    await t.deps.database.db
      .update(integrationConnections)
      .set({ status: "error" })
      .where(eq(integrationConnections.id, broken.id));
    const unknown = "sess_01BATCHUNKNOWNSESSION00000";
    const items = (
      [
        [granted!.sessionId, granted!.plan.routes[0]!.id],
        [revoked!.sessionId, revoked!.plan.routes[0]!.id],
        [wrongRoute!.sessionId, inError!.plan.routes[0]!.id],
        [brokenSession.sessionId, brokenSession.plan.routes[0]!.id],
        [unknown, "x.route.0"],
      ] as const
    ).map(([sessionId, routeId], i) => ({
      sessionId,
      routeId,
      traceparent: `00-${String(i + 1).padStart(32, "c")}-${"d".repeat(16)}-01`,
    }));
    const answer = await resolveBatch(items);
    expect(answer.status).toBe(200);
    expect(answer.headers.get("cache-control")).toBe("no-store");
    expect(answer.body.results).toEqual([
      { status: 200, value: OPENAI_KEY, expiresAt: null, credentialVersion: 1 },
      { status: 403, error: expect.objectContaining({ code: "session_not_live" }) },
      { status: 403, error: expect.objectContaining({ code: "route_not_in_plan" }) },
      { status: 409, error: expect.objectContaining({ code: "connection_not_active" }) },
      { status: 403, error: expect.objectContaining({ code: "session_not_live" }) },
    ]);
    // Each item answers exactly what `POST .../resolve` answers for it (same code and message).
    for (const [i, item] of items.entries()) {
      if (i === 0) continue;
      const alone = await resolve(item.sessionId, item.routeId);
      expect({
        status: alone.status,
        code: alone.body.error.code,
        message: alone.body.error.message,
      }).toEqual({
        status: answer.body.results[i].status,
        code: answer.body.results[i].error.code,
        message: answer.body.results[i].error.message,
      });
    }
    const sessionIds = [granted, revoked, wrongRoute].map((s) => s!.sessionId);
    for (const [i, sessionId] of [...sessionIds, brokenSession.sessionId, unknown].entries()) {
      const [entry] = await auditFor(sessionId);
      expect(entry).toMatchObject({
        action: i === 0 ? "credential.resolved" : "credential.refused",
        traceId: items[i]!.traceparent.slice(3, 35),
        details: { sessionId, routeId: items[i]!.routeId },
      });
    }
  });

  it("refuses an empty or oversized batch and bad items with 400, a missing assertion with 401", async () => {
    const session = await openaiSession();
    const item = { sessionId: session.sessionId, routeId: session.plan.routes[0]!.id };
    expect((await resolveBatch([])).status).toBe(400);
    expect((await resolveBatch(Array.from({ length: 257 }, () => item))).status).toBe(400);
    expect((await resolveBatch([{ ...item, connectionId: "conn_x" }])).status).toBe(400);
    expect((await resolveBatch([{ sessionId: "", routeId: "r" }])).status).toBe(400);
    const anonymous = await t.call("POST", "/internal/v1/credentials/resolve-batch", undefined, {
      items: [item],
    });
    expect(anonymous.status).toBe(401);
    // Nothing was resolved or audited for any of them.
    expect(await auditFor(session.sessionId)).toEqual([]);
  });
});

/**
 * Through Node's HTTP server, as deployed (`server.ts`): internal routes then read their JSON
 * bodies from Node's request (`request-body.ts`), not through the web `Request` that
 * `app.request` builds.
 */
describe("internal bodies through the HTTP server", () => {
  let server: Server;
  let url: string;
  beforeAll(async () => {
    server = createAdaptorServer({ fetch: t.app.fetch }) as Server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  async function post(path: string, body: string, headers: Record<string, string> = {}) {
    const response = await fetch(`${url}${path}`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${await t.gatewayAssertion()}`,
        "content-type": "application/json",
        ...headers,
      },
      body,
    });
    // biome-ignore lint/suspicious/noExplicitAny: tests read response JSON freely and assert on it.
    return { status: response.status, body: (await response.json()) as any };
  }

  it("resolves one and a batch, and answers liveness, from bodies read off the socket", async () => {
    const session = await openaiSession();
    const item = { sessionId: session.sessionId, routeId: session.plan.routes[0]!.id };
    const one = await post("/internal/v1/credentials/resolve", JSON.stringify(item));
    expect(one).toMatchObject({ status: 200, body: { value: OPENAI_KEY } });
    const batch = await post(
      "/internal/v1/credentials/resolve-batch",
      JSON.stringify({ items: [item, { ...item, routeId: "x.route.0" }] }),
    );
    expect(batch.status).toBe(200);
    expect(batch.body.results.map((r: { status: number }) => r.status)).toEqual([200, 403]);
    const liveness = await post(
      "/internal/v1/sessions/liveness",
      JSON.stringify({ sessionIds: [session.sessionId] }),
    );
    expect(liveness.body.sessions[0]).toMatchObject({ live: true });
  });

  it("answers 400 to malformed JSON and 413 to a body over the route's limit", async () => {
    const malformed = await post("/internal/v1/credentials/resolve", "{not json");
    expect(malformed).toMatchObject({ status: 400, body: { error: { code: "invalid_request" } } });
    const big = JSON.stringify({ sessionId: "s".repeat(20_000), routeId: "r" });
    const declared = await post("/internal/v1/credentials/resolve", big);
    expect(declared).toMatchObject({ status: 413, body: { error: { code: "payload_too_large" } } });
    // The batch route takes more than the single one (256 items), not without bound.
    const huge = JSON.stringify({ items: [{ sessionId: "s".repeat(300_000), routeId: "r" }] });
    const over = await post("/internal/v1/credentials/resolve-batch", huge);
    expect(over).toMatchObject({ status: 413, body: { error: { code: "payload_too_large" } } });
  });
});

describe("OpenAPI document", () => {
  it("describes the internal and audit routes", async () => {
    const doc = await t.call("GET", "/openapi.json", undefined);
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.body.paths)).toEqual(
      expect.arrayContaining([
        "/internal/v1/plans/{digest}",
        "/internal/v1/credentials/resolve",
        "/internal/v1/events",
        "/v1/audit",
        "/v1/audit/verify",
      ]),
    );
  });
});

describe("POST /internal/v1/sessions/liveness", () => {
  async function liveness(sessionIds: unknown) {
    return t.call("POST", "/internal/v1/sessions/liveness", await t.gatewayAssertion(), {
      sessionIds,
    });
  }

  it("answers live, revoked, expired and unknown sessions in the order asked", async () => {
    const live = await openaiSession();
    const revoked = await openaiSession();
    await t.deps.database.db
      .update(sandboxSessions)
      .set({ revokedAt: t.clock.now() })
      .where(eq(sandboxSessions.id, revoked.sessionId));
    const [row] = await t.deps.database.db
      .select({ expiresAt: sandboxSessions.expiresAt })
      .from(sandboxSessions)
      .where(eq(sandboxSessions.id, live.sessionId));
    const unknown = "sess_01JUNKJUNKJUNKJUNKJUNKJUNK";
    const answer = await liveness([revoked.sessionId, unknown, live.sessionId]);
    expect(answer.status).toBe(200);
    expect(answer.headers.get("cache-control")).toBe("no-store");
    expect(answer.body.sessions).toEqual([
      { sessionId: revoked.sessionId, live: false, expiresAt: expect.any(String) },
      { sessionId: unknown, live: false, expiresAt: null },
      { sessionId: live.sessionId, live: true, expiresAt: row!.expiresAt.toISOString() },
    ]);

    const start = t.clock.now();
    try {
      clock.set(row!.expiresAt);
      expect((await liveness([live.sessionId])).body.sessions[0].live).toBe(false);
    } finally {
      clock.set(start);
    }
  });

  it("refuses an empty or oversized list and callers without a gateway assertion", async () => {
    expect((await liveness([])).status).toBe(400);
    const tooMany = Array.from({ length: 1001 }, (_, i) => `sess_${i}`);
    expect((await liveness(tooMany)).status).toBe(400);
    const anonymous = await t.call("POST", "/internal/v1/sessions/liveness", undefined, {
      sessionIds: ["sess_x"],
    });
    expect(anonymous.status).toBe(401);
  });

  it("carries the plans a gateway lacks, by digest, with the liveness answer", async () => {
    const first = await openaiSession();
    const second = await openaiSession();
    const unknownDigest = "0".repeat(64);
    const answer = await t.call(
      "POST",
      "/internal/v1/sessions/liveness",
      await t.gatewayAssertion(),
      {
        sessionIds: [first.sessionId, second.sessionId],
        plans: [first.planDigest, second.planDigest, unknownDigest, first.planDigest],
      },
    );
    expect(answer.status).toBe(200);
    expect(answer.headers.get("content-type")).toMatch(/^application\/json/);
    expect(answer.body.sessions.map((s: { live: boolean }) => s.live)).toEqual([true, true]);
    // The plans as `GET /internal/v1/plans/{digest}` serves them; an unknown digest is left out.
    expect(answer.body.plans).toEqual({
      [first.planDigest]: first.plan,
      [second.planDigest]: second.plan,
    });
    // Without `plans`, the answer is liveness alone.
    expect((await liveness([first.sessionId])).body.plans).toBeUndefined();
  });

  it("refuses malformed plan digests and more than 256 of them", async () => {
    const session = await openaiSession();
    const ask = async (plans: unknown) =>
      (
        await t.call("POST", "/internal/v1/sessions/liveness", await t.gatewayAssertion(), {
          sessionIds: [session.sessionId],
          plans,
        })
      ).status;
    expect(await ask(["not-a-digest"])).toBe(400);
    expect(await ask(Array.from({ length: 257 }, () => session.planDigest))).toBe(400);
    expect(await ask(Array.from({ length: 256 }, () => session.planDigest))).toBe(200);
  });
});
