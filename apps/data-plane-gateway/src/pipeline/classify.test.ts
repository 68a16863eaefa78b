import { type CompiledRuntimePlan, planDigest } from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import { GatewayError } from "../errors";
import { createClassify, type PlanSource } from "./classify";

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

/** A plan source over a map, as the control-plane client's cache would answer. */
function mapSource(): PlanSource & { loaded: string[] } {
  const loaded: string[] = [];
  const cache = new Map<string, CompiledRuntimePlan>();
  return {
    loaded,
    cachedPlan: (d) => cache.get(d),
    async getPlan(d) {
      loaded.push(d);
      if (d !== digest) throw new Error("unknown plan");
      cache.set(d, plan);
      return plan;
    },
  };
}

describe("classify", () => {
  it("loads a plan once and builds its index once", async () => {
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
