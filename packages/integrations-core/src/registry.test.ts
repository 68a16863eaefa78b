import { describe, expect, it } from "vitest";
import type { z } from "zod";
import { createRegistry, IntegrationRegistry, RegistryError } from "./registry";
import {
  jsonAgentFixtureDefinition,
  restFixtureDefinition,
  tomlAgentFixtureDefinition,
} from "./testing/fixture-definitions";

describe("IntegrationRegistry", () => {
  it("lists definitions sorted by variant id and finds them", () => {
    const registry = createRegistry([
      tomlAgentFixtureDefinition,
      restFixtureDefinition,
      jsonAgentFixtureDefinition,
    ]);
    expect(registry.list().map((d) => d.variantId)).toEqual([
      "json-agent-fixture",
      "rest-fixture",
      "toml-agent-fixture",
    ]);
    expect(registry.get("rest-fixture")).toBe(restFixtureDefinition);
    expect(registry.get("nope")).toBeUndefined();
    expect(() => registry.require("nope")).toThrowError(/no definition nope/);
  });

  it("refuses a duplicate variant id, within one batch or against the registry", () => {
    const registry = createRegistry([restFixtureDefinition]);
    expect(() => registry.register(restFixtureDefinition)).toThrowError(
      expect.objectContaining({ code: "duplicate_definition" }),
    );
    expect(() =>
      new IntegrationRegistry().registerMany([restFixtureDefinition, restFixtureDefinition]),
    ).toThrowError(RegistryError);
  });

  it("registerMany is atomic: nothing is added when one definition is invalid", () => {
    const registry = new IntegrationRegistry();
    const broken = { ...restFixtureDefinition, variantId: "Broken Id", connectionMethods: [] };
    let error: unknown;
    try {
      registry.registerMany([jsonAgentFixtureDefinition, broken]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RegistryError);
    expect(error).toMatchObject({ code: "invalid_definition" });
    expect((error as RegistryError).issues).toEqual([
      "variantId must match /^[a-z][a-z0-9-]*$/",
      "connectionMethods must list at least one method",
    ]);
    expect(registry.list()).toEqual([]);
  });

  it("names each structural problem of an invalid definition", () => {
    const broken = {
      ...restFixtureDefinition,
      variantId: "broken",
      kind: "robot" as "agent",
      targetConfigSchema: { parse: () => ({}) } as unknown as z.ZodType,
      connectionMethods: [
        { id: "m", label: "M", kind: "oauth2-client-credentials" as const },
        { id: "m", label: "M again", kind: "api-key" as const },
      ],
      mcp: tomlAgentFixtureDefinition.mcp,
    };
    expect(() => createRegistry([broken])).toThrowError(
      /kind must be agent\|git\|connector; targetConfigSchema must be a zod schema; connectionMethods\[0\] needs oauth2 behaviour; connectionMethods\[0\] needs oauth2.clientCredentials; connectionMethods\[1\].id "m" is repeated; only agent definitions have mcpConfig/,
    );
  });

  it("refuses a GitHub App installation method without installation behaviour", () => {
    const broken = {
      ...restFixtureDefinition,
      variantId: "app-fixture",
      connectionMethods: [{ id: "app", label: "App", kind: "github-app-installation" as const }],
    };
    expect(() => createRegistry([broken])).toThrowError(
      /connectionMethods\[0\] needs appInstallation behaviour/,
    );
  });
});
