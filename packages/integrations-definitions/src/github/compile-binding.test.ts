import {
  type BindingInput,
  type ConnectionInput,
  compilePlan,
  createRegistry,
  type TargetInput,
} from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import { githubCloudDefinition } from "../github-cloud/definition";

const registry = createRegistry([githubCloudDefinition]);
const target: TargetInput = {
  id: "tgt_gh",
  targetKey: "github-cloud",
  variantId: "github-cloud",
  enabled: true,
  config: {},
};
const connection = (id: string): ConnectionInput => ({
  id,
  targetId: target.id,
  methodId: "github-app",
  status: "active",
  config: {},
  externalSubjectId: "77",
});
const binding = (id: string, connectionId: string, repositories: string[]): BindingInput => ({
  id,
  kind: "git",
  connectionId,
  config: { repositories },
});

describe("compileGitHubBinding", () => {
  it("compiles two repositories without overlapping routes", () => {
    const result = compilePlan({
      profileVersionId: "pver_1",
      bindings: [binding("bind_a", "conn_a", ["octo/widgets", "octo/widgets-docs"])],
      connections: [connection("conn_a")],
      targets: [target],
      registry,
    });
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    expect(result.plan.routes).toHaveLength(3);
    expect(result.plan.routes[0]?.match.pathPrefixes).toEqual([
      "/octo/widgets-docs.git/git-upload-pack",
      "/octo/widgets-docs.git/info/lfs",
      "/octo/widgets-docs.git/info/refs",
      "/octo/widgets-docs/git-upload-pack",
      "/octo/widgets-docs/info/refs",
      "/octo/widgets.git/git-upload-pack",
      "/octo/widgets.git/info/lfs",
      "/octo/widgets.git/info/refs",
      "/octo/widgets/git-upload-pack",
      "/octo/widgets/info/refs",
    ]);
    expect(result.plan.workspaceSources.map((s) => [s.url, s.path])).toEqual([
      ["https://github.com/octo/widgets.git", "widgets"],
      ["https://github.com/octo/widgets-docs.git", "widgets-docs"],
    ]);
  });

  it("checks out same-named repositories of different owners under owner/name", () => {
    const result = compilePlan({
      profileVersionId: "pver_1",
      bindings: [{ ...binding("bind_a", "conn_a", ["octo/site", "acme/Site", "acme/tools"]) }],
      connections: [{ ...connection("conn_a"), methodId: "personal-access-token" }],
      targets: [target],
      registry,
    });
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    expect(result.plan.workspaceSources.map((s) => s.path)).toEqual([
      "octo/site",
      "acme/Site",
      "tools",
    ]);
  });

  it("reports a second binding to the same target as a route conflict (both route GraphQL)", () => {
    const result = compilePlan({
      profileVersionId: "pver_1",
      bindings: [
        binding("bind_a", "conn_a", ["octo/widgets"]),
        binding("bind_b", "conn_b", ["octo/gadgets"]),
      ],
      connections: [connection("conn_a"), connection("conn_b")],
      targets: [target],
      registry,
    });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.errors.map((e) => [e.code, e.bindingIds])).toEqual([
        ["route_conflict", ["bind_a", "bind_b"]],
      ]);
    }
  });
});
