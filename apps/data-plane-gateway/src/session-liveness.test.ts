import { setTimeout as sleep } from "node:timers/promises";
import { createLogger } from "@keyway/observability";
import { afterEach, describe, expect, it } from "vitest";
import { GatewayError } from "./errors";
import { createInvalidationHub, type InvalidationEvent } from "./invalidations";
import { createSessionLiveness, type SessionLiveness } from "./session-liveness";

/**
 * A control plane's liveness answers: sessions in `notLive` are revoked, everything else is live;
 * `down` makes every call fail as an unreachable control plane does. `requests` records each
 * call's ids.
 */
function controlPlane() {
  const state = {
    notLive: new Set<string>(),
    down: false,
    requests: [] as string[][],
    /** Each call's plan digests. */
    planDigests: [] as (readonly string[] | undefined)[],
    /** Held answers: a call waits until `release()` when set. */
    hold: null as Promise<void> | null,
  };
  const source = {
    async checkSessions(ids: readonly string[], planDigests?: readonly string[]) {
      state.requests.push([...ids]);
      state.planDigests.push(planDigests);
      if (state.hold) await state.hold;
      if (state.down) throw new Error("connect ECONNREFUSED 127.0.0.1:1");
      return ids.map((sessionId) => ({
        sessionId,
        live: !state.notLive.has(sessionId),
        expiresAt: "2026-11-23T10:00:00.000Z",
      }));
    },
  };
  return { state, source };
}

const quiet = createLogger({ level: "error", write: () => {} });
const TOKEN_END = Date.parse("2026-11-22T12:00:00Z");

describe("createSessionLiveness", () => {
  let now = Date.parse("2026-11-22T10:00:00Z");
  const clock = { now: () => new Date(now) };
  const open: SessionLiveness[] = [];

  function setup(options: { recheckMs?: number; outageGraceMs?: number; slotMs?: number } = {}) {
    now = Date.parse("2026-11-22T10:00:00Z");
    const cp = controlPlane();
    const hub = createInvalidationHub();
    const published: InvalidationEvent[] = [];
    hub.subscribe({ onEvent: (event) => published.push(event), onResync() {} });
    const liveness = createSessionLiveness({
      source: cp.source,
      clock,
      invalidations: hub,
      logger: quiet,
      ...options,
    });
    open.push(liveness);
    return { cp, hub, liveness, published };
  }

  afterEach(() => {
    for (const liveness of open.splice(0)) liveness.close();
  });

  it("sends the checks asked while a request is under way together in the next", async () => {
    const { cp, liveness } = setup({ slotMs: 60_000 });
    let release: () => void = () => {};
    cp.state.hold = new Promise((resolve) => {
      release = resolve;
    });
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    const confirmed = [liveness.confirm("sess_1", TOKEN_END)];
    await turn();
    confirmed.push(liveness.confirm("sess_2", TOKEN_END));
    await turn();
    confirmed.push(liveness.confirm("sess_3", TOKEN_END));
    await turn();
    confirmed.push(liveness.confirm("sess_4", TOKEN_END));
    await turn();
    expect(cp.state.requests).toEqual([["sess_1"]]);
    release();
    await Promise.all(confirmed);
    expect(cp.state.requests).toEqual([["sess_1"], ["sess_2", "sess_3", "sess_4"]]);
  });

  it("passes the plans of the sessions confirmed together to the source in one call", async () => {
    const { cp, liveness } = setup({ recheckMs: 1_000 });
    await Promise.all([
      liveness.confirm("sess_a", TOKEN_END, "digest-a"),
      liveness.confirm("sess_b", TOKEN_END),
      liveness.confirm("sess_c", TOKEN_END, "digest-c"),
    ]);
    expect(cp.state.requests).toEqual([["sess_a", "sess_b", "sess_c"]]);
    expect(cp.state.planDigests).toEqual([["digest-a", "digest-c"]]);
  });

  async function failure(promise: Promise<unknown>): Promise<GatewayError> {
    const error = await promise.then(
      () => null,
      (e: unknown) => e,
    );
    if (!(error instanceof GatewayError)) throw new Error("expected a GatewayError");
    return error;
  }

  it("asks the control plane on first use, once for all sessions of one turn", async () => {
    const { cp, liveness } = setup();
    expect(liveness.isConfirmed("s1", now)).toBe(false);
    await Promise.all([
      liveness.confirm("s1", TOKEN_END),
      liveness.confirm("s2", TOKEN_END),
      liveness.confirm("s1", TOKEN_END),
    ]);
    expect(cp.state.requests).toEqual([["s1", "s2"]]);
    expect(liveness.isConfirmed("s1", now)).toBe(true);
    expect(liveness.isConfirmed("s2", now)).toBe(true);
  });

  it("remembers a not-live answer and tells the hub, without asking again", async () => {
    const { cp, liveness, published } = setup();
    cp.state.notLive.add("s1");
    const error = await failure(liveness.confirm("s1", TOKEN_END));
    expect(error).toMatchObject({ code: "proxy_auth_required", status: 407 });
    expect(published).toEqual([{ type: "session.revoked", sessionId: "s1" }]);
    expect(liveness.isRevoked("s1")).toBe(true);
    // Even a control plane that now answers live (it cannot, but a stale replica might) is not asked.
    cp.state.notLive.clear();
    expect((await failure(liveness.confirm("s1", TOKEN_END))).status).toBe(407);
    expect(cp.state.requests).toHaveLength(1);
  });

  it("applies session.revoked events at once and keeps them through a resync", async () => {
    const { cp, hub, liveness } = setup();
    await liveness.confirm("s1", TOKEN_END);
    hub.publish({ type: "session.revoked", sessionId: "s1" });
    expect(liveness.isConfirmed("s1", now)).toBe(false);
    expect(liveness.isRevoked("s1")).toBe(true);
    hub.resync();
    expect((await failure(liveness.confirm("s1", TOKEN_END))).status).toBe(407);
    // A revocation announced for a session this gateway never saw is remembered too.
    hub.publish({ type: "session.revoked", sessionId: "s9" });
    expect((await failure(liveness.confirm("s9", TOKEN_END))).status).toBe(407);
    expect(cp.state.requests.flat()).not.toContain("s9");
  });

  it("lets a revocation that arrives while a check is in flight win over a live answer", async () => {
    const { cp, hub, liveness } = setup();
    let release: () => void = () => {};
    cp.state.hold = new Promise((resolve) => {
      release = resolve;
    });
    const pending = liveness.confirm("s1", TOKEN_END);
    await sleep(5);
    hub.publish({ type: "session.revoked", sessionId: "s1" });
    release();
    expect((await failure(pending)).status).toBe(407);
    expect(liveness.isConfirmed("s1", now)).toBe(false);
  });

  it("voids every confirmation on resync and re-checks the sessions in use at once", async () => {
    const { cp, hub, liveness } = setup();
    await Promise.all([liveness.confirm("s1", TOKEN_END), liveness.confirm("s2", TOKEN_END)]);
    // Revoked while this gateway's stream was down: the event never arrives.
    cp.state.notLive.add("s2");
    hub.resync();
    expect(liveness.isConfirmed("s1", now)).toBe(false);
    expect(liveness.isConfirmed("s2", now)).toBe(false);
    await liveness.confirm("s1", TOKEN_END);
    expect((await failure(liveness.confirm("s2", TOKEN_END))).status).toBe(407);
    // The resync's batch carried both; the confirms joined it instead of asking again.
    expect(cp.state.requests).toEqual([
      ["s1", "s2"],
      ["s1", "s2"],
    ]);
    expect(liveness.isConfirmed("s1", now)).toBe(true);
  });

  it("re-checks sessions in use periodically, catching a revocation nobody announced", async () => {
    const { cp, liveness, published } = setup({ recheckMs: 20 });
    liveness.start();
    await liveness.confirm("s1", TOKEN_END);
    cp.state.notLive.add("s1");
    for (let i = 0; i < 200 && !liveness.isRevoked("s1"); i++) await sleep(10);
    expect(liveness.isRevoked("s1")).toBe(true);
    expect(published).toContainEqual({ type: "session.revoked", sessionId: "s1" });
  });

  it("fails closed for sessions never confirmed when the control plane is unreachable", async () => {
    const { cp, liveness } = setup();
    cp.state.down = true;
    const error = await failure(liveness.confirm("s1", TOKEN_END));
    expect(error).toMatchObject({ code: "control_plane_unavailable", status: 502 });
    expect(liveness.isConfirmed("s1", now)).toBe(false);
    cp.state.down = false;
    await liveness.confirm("s1", TOKEN_END);
    expect(liveness.isConfirmed("s1", now)).toBe(true);
  });

  it("keeps a confirmed session working within the outage grace, and no longer", async () => {
    const { cp, hub, liveness } = setup({ outageGraceMs: 60_000 });
    await liveness.confirm("s1", TOKEN_END);
    cp.state.down = true;
    // A reconnect voids the confirmation, but the control plane cannot answer: the grace holds.
    hub.resync();
    now += 30_000;
    await liveness.confirm("s1", TOKEN_END);
    now += 31_000;
    expect(liveness.isConfirmed("s1", now)).toBe(false);
    const error = await failure(liveness.confirm("s1", TOKEN_END));
    expect(error).toMatchObject({ code: "control_plane_unavailable", status: 502 });
    cp.state.down = false;
    await liveness.confirm("s1", TOKEN_END);
    expect(liveness.isConfirmed("s1", now)).toBe(true);
  });
});
