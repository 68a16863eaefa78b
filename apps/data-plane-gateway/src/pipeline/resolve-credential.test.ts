import type { EgressRoute } from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import { ControlPlaneError } from "../control-plane-client";
import { GatewayError } from "../errors";
import { createInvalidationHub } from "../invalidations";
import { type CredentialSource, createResolveCredential } from "./resolve-credential";

function route(
  id: string,
  connectionId: string,
  auth: EgressRoute["auth"] = { type: "header", name: "x-key" },
): EgressRoute {
  return {
    id,
    bindingId: "b",
    match: { hosts: ["h.test"] },
    upstream: { baseUrl: "https://u.test" },
    auth,
    credential: { connectionId, secretType: "api_key" },
  };
}

/**
 * A credential source that answers `<routeId>#<n>`, n counting its resolutions of that route, so
 * a test sees from the value alone whether the control plane was asked again.
 */
function countingSource(options: { expiresInMs?: number | null; clock: { now(): Date } }) {
  const counts = new Map<string, number>();
  let failing = false;
  let gate: Promise<void> | null = null;
  const source: CredentialSource = {
    async resolveCredential({ routeId }) {
      if (gate) await gate;
      if (failing) throw new Error("provider down");
      const n = (counts.get(routeId) ?? 0) + 1;
      counts.set(routeId, n);
      const expiresInMs = options.expiresInMs ?? null;
      return {
        value: `${routeId}#${n}`,
        expiresAt:
          expiresInMs === null ? null : new Date(options.clock.now().getTime() + expiresInMs),
      };
    },
  };
  return {
    source,
    fail(value: boolean) {
      failing = value;
    },
    hold(): () => void {
      let release = () => {};
      gate = new Promise((resolve) => {
        release = () => {
          gate = null;
          resolve();
        };
      });
      return release;
    },
  };
}

const session = { sessionId: "sess_1" };

function setup(expiresInMs: number | null = null) {
  let now = new Date("2026-11-22T10:00:00Z");
  const clock = { now: () => now };
  const hub = createInvalidationHub();
  const counting = countingSource({ expiresInMs, clock });
  const stats = { hits: 0, misses: 0 };
  const resolver = createResolveCredential({
    source: counting.source,
    clock,
    invalidations: hub,
    observer: { hit: () => stats.hits++, miss: () => stats.misses++ },
  });
  const resolve = async (r: EgressRoute) => resolver.resolveRouteCredential(session, r);
  return {
    hub,
    counting,
    stats,
    resolve,
    advance(ms: number) {
      now = new Date(now.getTime() + ms);
    },
  };
}

describe("resolveRouteCredential", () => {
  it("resolves once for concurrent requests (single flight) and then serves from cache", async () => {
    const t = setup();
    const r = route("r1", "c1");
    const release = t.counting.hold();
    const concurrent = Promise.all([t.resolve(r), t.resolve(r), t.resolve(r)]);
    release();
    expect(await concurrent).toEqual(["r1#1", "r1#1", "r1#1"]);
    expect(await t.resolve(r)).toBe("r1#1");
    expect(t.stats).toEqual({ hits: 1, misses: 3 });
  });

  it("keeps a credential until its expiry minus 30 s", async () => {
    const t = setup(90_000);
    const r = route("r1", "c1");
    expect(await t.resolve(r)).toBe("r1#1");
    t.advance(59_000);
    expect(await t.resolve(r)).toBe("r1#1");
    t.advance(1_000);
    expect(await t.resolve(r)).toBe("r1#2");
  });

  it("keeps a non-expiring secret at most five minutes", async () => {
    const t = setup(null);
    const r = route("r1", "c1");
    await t.resolve(r);
    t.advance(299_000);
    expect(await t.resolve(r)).toBe("r1#1");
    t.advance(1_000);
    expect(await t.resolve(r)).toBe("r1#2");
  });

  it("does not cache a credential that expires within the margin", async () => {
    const t = setup(10_000);
    const r = route("r1", "c1");
    expect(await t.resolve(r)).toBe("r1#1");
    expect(await t.resolve(r)).toBe("r1#2");
  });

  it("keys the cache by route object: each cached plan's routes are its own", async () => {
    const t = setup();
    const r1 = route("r1", "c1");
    // The same route id in another plan (the plan cache gives each plan its own route objects).
    const r1InAnotherPlan = route("r1", "c1");
    expect(await t.resolve(r1)).toBe("r1#1");
    expect(await t.resolve(route("r2", "c1"))).toBe("r2#1");
    expect(await t.resolve(r1InAnotherPlan)).toBe("r1#2");
    expect(await t.resolve(r1)).toBe("r1#1");
  });

  it("remembers an invalidation as long as an entry it concerns may still be cached", async () => {
    const t = setup();
    const a = route("ra", "conn_a");
    expect(await t.resolve(a)).toBe("ra#1"); // kept at most five minutes
    t.advance(100_000);
    t.hub.publish({ type: "connection.updated", connectionId: "conn_a" });
    t.advance(199_000);
    // Recording another invalidation forgets only records older than five minutes.
    t.hub.publish({ type: "connection.updated", connectionId: "conn_b" });
    expect(await t.resolve(a)).toBe("ra#2");
    expect(await t.resolve(a)).toBe("ra#2");
  });

  it("drops the entries of a connection on its events, and nothing else", async () => {
    const t = setup();
    const a = route("ra", "conn_a");
    const b = route("rb", "conn_b");
    await t.resolve(a);
    await t.resolve(b);
    for (const [n, event] of [
      [2, { type: "credential.rotated", connectionId: "conn_a", credentialVersion: 2 }],
      [3, { type: "connection.updated", connectionId: "conn_a" }],
      [4, { type: "connection.revoked", connectionId: "conn_a" }],
    ] as const) {
      t.hub.publish(event);
      expect(await t.resolve(a)).toBe(`ra#${n}`);
      expect(await t.resolve(b)).toBe("rb#1");
    }
  });

  it("drops what a revoked session resolved, and everything on target events and resync", async () => {
    const t = setup();
    const a = route("ra", "conn_a");
    await t.resolve(a);
    t.hub.publish({ type: "session.revoked", sessionId: "other" });
    expect(await t.resolve(a)).toBe("ra#1");
    t.hub.publish({ type: "session.revoked", sessionId: "sess_1" });
    expect(await t.resolve(a)).toBe("ra#2");
    t.hub.publish({ type: "target.disabled", targetId: "t1" });
    expect(await t.resolve(a)).toBe("ra#3");
    t.hub.resync();
    expect(await t.resolve(a)).toBe("ra#4");
  });

  it("does not cache a resolution overtaken by an invalidation", async () => {
    const t = setup();
    const a = route("ra", "conn_a");
    const release = t.counting.hold();
    const pending = t.resolve(a);
    t.hub.publish({ type: "credential.rotated", connectionId: "conn_a", credentialVersion: 2 });
    release();
    expect(await pending).toBe("ra#1");
    expect(await t.resolve(a)).toBe("ra#2");
  });

  it("answers 502 credential_unavailable when the control plane fails, and retries next time", async () => {
    const t = setup();
    const a = route("ra", "conn_a");
    t.counting.fail(true);
    const error = await t.resolve(a).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GatewayError);
    expect(error).toMatchObject({ code: "credential_unavailable", status: 502 });
    t.counting.fail(false);
    expect(await t.resolve(a)).toBe("ra#1");
  });

  it("answers 407 when the control plane says the session is not live", async () => {
    const resolver = createResolveCredential({
      source: {
        resolveCredential: () =>
          Promise.reject(new ControlPlaneError(403, "session_not_live", "session not live")),
      },
      clock: { now: () => new Date() },
      invalidations: createInvalidationHub(),
    });
    const error = await Promise.resolve(
      resolver.resolveRouteCredential(session, route("ra", "conn_a")),
    ).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "proxy_auth_required", status: 407 });
  });

  it("does not hand one session's not-live refusal to another session that joined it", async () => {
    // The control plane refuses `sess_gone` (revoked) and serves everyone else; `fail` makes
    // every call fail as a provider outage would. Calls wait until `open` is called.
    const asked: string[] = [];
    let open: () => void = () => {};
    const opened = new Promise<void>((resolve) => {
      open = resolve;
    });
    let failing = false;
    const resolver = createResolveCredential({
      source: {
        async resolveCredential({ sessionId, routeId }) {
          asked.push(sessionId);
          await opened;
          if (failing) throw new Error("provider down");
          if (sessionId === "sess_gone") {
            throw new ControlPlaneError(403, "session_not_live", "session not live");
          }
          return { value: `${routeId}@${sessionId}`, expiresAt: null };
        },
      },
      clock: { now: () => new Date() },
      invalidations: createInvalidationHub(),
    });
    const ask = (sessionId: string, r: EgressRoute) =>
      Promise.resolve(resolver.resolveRouteCredential({ sessionId }, r)).catch(
        (e: unknown) => e as GatewayError,
      );

    // The revoked session asks first; two live ones (same plan, same route) join its resolution.
    const shared = route("rs", "conn_s");
    const gone = ask("sess_gone", shared);
    const live = ask("sess_live", shared);
    const otherLive = ask("sess_live_2", shared);
    const again = ask("sess_gone", shared);
    open();
    expect(await gone).toMatchObject({ code: "proxy_auth_required", status: 407 });
    expect(await again).toMatchObject({ code: "proxy_auth_required", status: 407 });
    expect(await live).toBe("rs@sess_live");
    // Still one resolution at a time: the second live session joins the first one's.
    expect(await otherLive).toBe("rs@sess_live");
    // One call for the revoked session's requests, then one for the live sessions.
    expect(asked).toEqual(["sess_gone", "sess_live"]);

    // A failure that is not about the asking session stays shared: one call, both fail alike.
    failing = true;
    asked.length = 0;
    const other = route("rt", "conn_t");
    const [first, joined] = await Promise.all([ask("sess_gone", other), ask("sess_live", other)]);
    expect(first).toMatchObject({ code: "credential_unavailable" });
    expect(joined).toMatchObject({ code: "credential_unavailable" });
    expect(asked).toEqual(["sess_gone"]);
  });

  it("needs no credential for auth none", async () => {
    const t = setup();
    expect(await t.resolve(route("rn", "c", { type: "none" }))).toBeNull();
  });
});
