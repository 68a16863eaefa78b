import { type CompiledRuntimePlan, planDigest } from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import { GatewayError } from "../errors";
import { createPlanCache, type PlanCache } from "../plan-cache";
import { createClassify } from "./classify";

const plan: CompiledRuntimePlan = {
  schemaVersion: 1,
  profileVersionId: "pv",
  routes: [
    {
      id: "r_api",
      bindingId: "b1",
      match: { hosts: ["api.example.test"], methods: ["GET", "POST"], pathPrefixes: ["/v1"] },
      upstream: { baseUrl: "https://api.example.test" },
      auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
      credential: { connectionId: "c1", secretType: "api_key" },
    },
    {
      id: "r_alt",
      bindingId: "b1",
      match: { hosts: ["alt.example.test:8443"] },
      upstream: { baseUrl: "https://alt.example.test:8443" },
      auth: { type: "none" },
    },
  ],
  files: [],
  env: [],
  processes: [],
  workspaceSources: [],
  mcpServers: [],
  agentRuntimes: [],
};
const digest = planDigest(plan);

/** The real plan cache over a source that knows one plan and records what it was asked. */
function mapSource(): PlanCache & { loaded: string[] } {
  const loaded: string[] = [];
  const cache = createPlanCache({
    source: {
      async fetchPlan(d) {
        loaded.push(d);
        if (d !== digest) throw new Error("unknown plan");
        return plan;
      },
    },
  });
  return Object.assign(cache, { loaded });
}

describe("classify", () => {
  it("loads a plan once and keeps it", async () => {
    const source = mapSource();
    const classify = createClassify({ plans: source });
    const first = await classify.loadSessionPlan(digest);
    const second = classify.loadSessionPlan(digest);
    expect(second).toBe(first);
    expect(source.loaded).toEqual([digest]);
  });

  it("answers 502 when the plan cannot be loaded", async () => {
    const classify = createClassify({ plans: mapSource() });
    await expect(classify.loadSessionPlan("f".repeat(64))).rejects.toMatchObject({
      code: "control_plane_unavailable",
    });
  });

  it("matches, leaves unmanaged hosts to the policy, and denies the rest of a managed host", async () => {
    const classify = createClassify({ plans: mapSource() });
    const sessionPlan = await classify.loadSessionPlan(digest);
    const classifyRequest = (authority: string, method: string, rawPath: string) =>
      classify.classifyRequest(sessionPlan, { authority, method, rawPath });

    expect(classifyRequest("API.example.test:443", "get", "/v1/x?y")).toMatchObject({
      kind: "matched",
      route: { id: "r_api" },
    });
    expect(classifyRequest("alt.example.test:8443", "DELETE", "/")).toMatchObject({
      kind: "matched",
      route: { id: "r_alt" },
    });
    expect(classifyRequest("alt.example.test", "GET", "/")).toEqual({
      kind: "unmanaged",
      host: "alt.example.test",
    });
    expect(classifyRequest("Other.Test:8080", "GET", "/../x")).toEqual({
      kind: "unmanaged",
      host: "other.test:8080",
    });
    for (const [method, path] of [
      ["GET", "/v10"],
      ["DELETE", "/v1/x"],
      ["GET", "/v1/../admin"],
      ["GET", "/v1/%2e%2e/admin"],
      ["GET", "/v1/a%2Fb"],
      ["GET", "/v1\\x"],
    ] as const) {
      const error = (() => {
        try {
          classifyRequest("api.example.test", method, path);
        } catch (e) {
          return e;
        }
      })();
      expect(error, `${method} ${path}`).toBeInstanceOf(GatewayError);
      expect(error, `${method} ${path}`).toMatchObject({ code: "policy_denied", status: 403 });
    }
    expect(() => classifyRequest("bad host", "GET", "/")).toThrow(
      expect.objectContaining({ code: "bad_request" }),
    );
  });

  it("tells which CONNECT hosts are managed", async () => {
    const classify = createClassify({ plans: mapSource() });
    const sessionPlan = await classify.loadSessionPlan(digest);
    expect(classify.isManagedHost(sessionPlan, "api.example.test:443")).toBe(true);
    expect(classify.isManagedHost(sessionPlan, "api.example.test:8443")).toBe(false);
    expect(classify.isManagedHost(sessionPlan, "alt.example.test:8443")).toBe(true);
    expect(classify.isManagedHost(sessionPlan, "elsewhere.test:443")).toBe(false);
  });
});

describe("plans sharing a shape", () => {
  it("answers each plan's own route from the one index they share", async () => {
    // Two profile versions binding the same connections the same way: routes alike but for ids.
    const other: CompiledRuntimePlan = {
      ...plan,
      profileVersionId: "pv2",
      routes: plan.routes.map((r) => ({ ...r, id: `${r.id}_v2`, bindingId: "b2" })),
    };
    const plans = new Map([
      [digest, plan],
      [planDigest(other), other],
    ]);
    const cache = createPlanCache({
      source: {
        async fetchPlan(d) {
          const found = plans.get(d);
          if (found === undefined) throw new Error("unknown plan");
          return found;
        },
      },
    });
    const classify = createClassify({ plans: cache });
    const first = await classify.loadSessionPlan(digest);
    const second = await classify.loadSessionPlan(planDigest(other));
    expect(second.index).toBe(first.index);
    expect(cache.stats()).toMatchObject({ plans: 2, shapes: 1 });
    const request = { authority: "api.example.test", method: "GET", rawPath: "/v1/x" };
    expect(classify.classifyRequest(first, request)).toMatchObject({
      route: { id: "r_api", bindingId: "b1" },
    });
    expect(classify.classifyRequest(second, request)).toMatchObject({
      route: { id: "r_api_v2", bindingId: "b2", upstream: { baseUrl: "https://api.example.test" } },
    });
  });
});

describe("route order across plans", () => {
  function cacheOf(...plans: CompiledRuntimePlan[]) {
    const byDigest = new Map(plans.map((p) => [planDigest(p), p]));
    const cache = createPlanCache({
      source: {
        async fetchPlan(d) {
          const found = byDigest.get(d);
          if (found === undefined) throw new Error("unknown plan");
          return found;
        },
      },
    });
    return { cache, classify: createClassify({ plans: cache }) };
  }
  const versionOf = (
    p: CompiledRuntimePlan,
    v: string,
    order: (routes: typeof p.routes) => typeof p.routes,
  ) => ({
    ...p,
    profileVersionId: v,
    routes: order(p.routes.map((r) => ({ ...r, id: `${r.id}_${v}`, bindingId: `b_${v}` }))),
  });

  it("shares a shape between plans listing alike routes in another order", async () => {
    // The compiler orders routes by binding id, which every profile version draws anew.
    const reversed = versionOf(plan, "v2", (routes) => [...routes].reverse());
    const { cache, classify } = cacheOf(plan, reversed);
    const first = await classify.loadSessionPlan(digest);
    const second = await classify.loadSessionPlan(planDigest(reversed));
    expect(second.index).toBe(first.index);
    expect(cache.stats().shapes).toBe(1);
    for (const [authority, rawPath, id] of [
      ["api.example.test", "/v1/x", "r_api"],
      ["alt.example.test:8443", "/", "r_alt"],
    ] as const) {
      const request = { authority, method: "GET", rawPath };
      expect(classify.classifyRequest(first, request)).toMatchObject({ route: { id } });
      expect(classify.classifyRequest(second, request)).toMatchObject({
        route: { id: `${id}_v2` },
      });
    }
  });

  it("keeps plan order when routes tie on a host and prefix: the earlier route still wins", async () => {
    const tied: CompiledRuntimePlan = {
      ...plan,
      routes: [
        {
          ...plan.routes[0]!,
          id: "r_read",
          match: { hosts: ["api.example.test"], methods: ["GET"] },
        },
        { ...plan.routes[0]!, id: "r_any", match: { hosts: ["api.example.test"] } },
      ],
    };
    const swapped = versionOf(tied, "v2", (routes) => [...routes].reverse());
    const { cache, classify } = cacheOf(tied, swapped);
    const first = await classify.loadSessionPlan(planDigest(tied));
    const second = await classify.loadSessionPlan(planDigest(swapped));
    expect(cache.stats().shapes).toBe(2);
    const get = { authority: "api.example.test", method: "GET", rawPath: "/x" };
    expect(classify.classifyRequest(first, get)).toMatchObject({ route: { id: "r_read" } });
    expect(classify.classifyRequest(second, get)).toMatchObject({ route: { id: "r_any_v2" } });
  });
});
