import { compiledPlanSchema, compilePlanOrThrow } from "@keyway/integrations-core";
import { parse as parseToml } from "smol-toml";
import { describe, expect, it } from "vitest";
import { catalogue, createCatalogueRegistry } from "./index";
import { catalogueProfile } from "./testing/catalogue-profile";

const registry = createCatalogueRegistry();

function compileCatalogue() {
  const profile = catalogueProfile();
  return {
    profile,
    ...compilePlanOrThrow({ profileVersionId: "pver_catalogue", registry, ...profile }),
  };
}

describe("the v1 catalogue", () => {
  it("registers every definition of SPEC §5 with its kind", () => {
    expect(catalogue.map((d) => [d.variantId, d.kind])).toEqual([
      ["openai", "agent"],
      ["anthropic", "agent"],
      ["github-cloud", "git"],
      ["github-enterprise-server", "git"],
      ["linear", "connector"],
      ["slack", "connector"],
      ["atlassian", "connector"],
      ["http-api", "connector"],
    ]);
    expect(registry.list()).toHaveLength(8);
  });

  it("compiles a profile using every provider without route conflicts", () => {
    const { plan } = compileCatalogue();
    expect(compiledPlanSchema.parse(plan)).toEqual(plan);
    const hosts = new Set(plan.routes.flatMap((r) => r.match.hosts));
    for (const host of [
      "api.openai.com",
      "api.anthropic.com",
      "github.com",
      "api.github.com",
      "api.linear.app",
      "mcp.linear.app",
      "slack.com",
      "mcp.atlassian.com",
      "api.acme.example",
      "mcp.acme.example",
    ]) {
      expect(hosts).toContain(host);
    }
  });

  it("writes the MCP servers of every connector into both the Codex TOML and the Claude JSON", () => {
    const { plan } = compileCatalogue();
    const names = plan.mcpServers.map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(["atlassian", "linear"]));
    expect(names.length).toBeGreaterThanOrEqual(3);

    const codex = plan.files.find((f) => f.path === ".codex/config.toml");
    const codexServers = (
      parseToml(codex?.content ?? "") as { mcp_servers?: Record<string, { url?: string }> }
    ).mcp_servers;
    const claude = plan.files.find((f) => f.root === "workspace" && f.path === ".mcp.json");
    const claudeServers = (
      JSON.parse(claude?.content ?? "{}") as {
        mcpServers?: Record<string, { type?: string; url?: string }>;
      }
    ).mcpServers;
    for (const server of plan.mcpServers) {
      if (server.transport !== "streamable-http") continue;
      expect(codexServers?.[server.name]?.url).toBe(server.url);
      expect(claudeServers?.[server.name]).toMatchObject({ type: "http", url: server.url });
    }
  });

  it("never puts a target or connection secret anywhere in the plan", () => {
    const { plan, profile } = compileCatalogue();
    const text = JSON.stringify(plan);
    expect(profile.secretValues.length).toBeGreaterThan(8);
    for (const secret of profile.secretValues) expect(text).not.toContain(secret);
  });

  it("gives every route of the plan a credential of its own binding's connection", () => {
    const { plan, profile } = compileCatalogue();
    const connectionOf = new Map(profile.bindings.map((b) => [b.id, b.connectionId]));
    for (const route of plan.routes) {
      if (route.auth.type === "none") continue;
      expect(route.credential?.connectionId).toBe(connectionOf.get(route.bindingId));
    }
  });
});
