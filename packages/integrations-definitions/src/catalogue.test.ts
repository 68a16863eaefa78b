import {
  compiledPlanSchema,
  compilePlanOrThrow,
  toJsonSchemaForm,
} from "@keyway/integrations-core";
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

  it("refuses CR, LF, TAB and spaces in every URL-valued target setting, naming the field", () => {
    const checked: string[] = [];
    for (const definition of catalogue) {
      for (const field of urlFields(toJsonSchemaForm(definition.targetConfigSchema))) {
        const config = (value: string) =>
          withField(BASE_TARGET_CONFIG[definition.variantId], field, value);
        // The clean URL parses, so each refusal below is the characters' doing.
        expect(definition.targetConfigSchema.safeParse(config(CLEAN_URL)).success).toBe(true);
        for (const bad of BAD_URLS) {
          const result = definition.targetConfigSchema.safeParse(config(bad));
          expect(result.success, `${definition.variantId} ${field} ${JSON.stringify(bad)}`).toBe(
            false,
          );
          expect(result.error?.issues.map((issue) => issue.path.join("."))).toContain(field);
        }
        checked.push(`${definition.variantId}.${field}`);
      }
    }
    expect(checked).toEqual(
      expect.arrayContaining([
        "http-api.baseUrl",
        "http-api.mcpServerUrl",
        "http-api.oauth2.tokenUrl",
        "http-api.oauth2.authorizationUrl",
        "atlassian.tokenUrl",
        "atlassian.apiUrl",
      ]),
    );
    expect(checked.length).toBeGreaterThan(15);
  });

  it("takes multi-line target secrets only where a secret spans lines (PEM keys)", () => {
    const multiLine: string[] = [];
    for (const definition of catalogue) {
      const form = toJsonSchemaForm(definition.targetSecretSchema);
      for (const field of Object.keys(propertiesOf(form))) {
        const lines = definition.targetSecretSchema.safeParse({ [field]: "line-one\nline-two" });
        if (lines.success) multiLine.push(`${definition.variantId}.${field}`);
      }
    }
    expect(multiLine).toEqual([
      "github-cloud.appPrivateKeyPem",
      "github-enterprise-server.appPrivateKeyPem",
    ]);
  });
});

const CLEAN_URL = "https://site.example.com/";
const BAD_URLS = [
  "https://site.example.com/\r\n",
  "https://site.example.com/\t",
  " https://site.example.com/",
  "https://site.\nexample.com/",
  "https://site.example.com/\u0000",
];

/** Smallest valid config per variant (the others parse from `{}`). */
const BASE_TARGET_CONFIG: Record<string, Record<string, unknown>> = {
  "github-enterprise-server": { webBaseUrl: "https://ghe.example.com" },
  "http-api": {
    baseUrl: "https://api.example.com/v1",
    oauth2: { tokenUrl: "https://auth.example.com/token" },
  },
};

type JsonNode = Record<string, unknown>;

function propertiesOf(node: unknown): Record<string, JsonNode> {
  const properties = (node as JsonNode | undefined)?.properties;
  return (properties ?? {}) as Record<string, JsonNode>;
}

/** Dotted paths of the `format: uri` fields of a JSON Schema form, through nested objects. */
function urlFields(node: unknown, prefix = ""): string[] {
  return Object.entries(propertiesOf(node)).flatMap(([key, child]) => {
    const path = prefix === "" ? key : `${prefix}.${key}`;
    return child.format === "uri" ? [path] : urlFields(child, path);
  });
}

function withField(base: Record<string, unknown> | undefined, field: string, value: string) {
  const config: Record<string, unknown> = structuredClone(base ?? {});
  const keys = field.split(".");
  let node = config;
  for (const key of keys.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys.at(-1) as string] = value;
  return config;
}
