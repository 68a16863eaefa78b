import type { BindingContext, ConnectionMethodKind } from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import { githubCloudTargetConfigSchema } from "../github-cloud/target-config-schema";
import { githubEnterpriseServerTargetConfigSchema } from "../github-enterprise-server/target-config-schema";
import { type GitHubBindingConfig, githubBindingConfigSchema } from "./binding-config-schema";
import type { GitHubTargetConfig } from "./target-config";
import { validateGitHubBinding } from "./validate-binding";

const cloud = githubCloudTargetConfigSchema.parse({});
const ghes = githubEnterpriseServerTargetConfigSchema.parse({
  webBaseUrl: "https://ghe.example.com",
});

function context(
  binding: unknown,
  options: { methodKind?: ConnectionMethodKind; target?: GitHubTargetConfig } = {},
): BindingContext<GitHubTargetConfig, unknown, GitHubBindingConfig> {
  const methodKind = options.methodKind ?? "api-key";
  return {
    target: { id: "tgt_1", targetKey: "github-cloud", config: options.target ?? cloud },
    connection: {
      id: "conn_1",
      methodId: methodKind === "api-key" ? "personal-access-token" : "github-app",
      methodKind,
      config: {},
    },
    binding: { id: "bind_1", config: githubBindingConfigSchema.parse(binding) },
  };
}

const issuesOf = (...args: Parameters<typeof context>) =>
  validateGitHubBinding(context(...args)).map(({ code, field }) => ({ code, field }));

describe("GitHub binding config", () => {
  it("defaults permissions to read-only contents and metadata", () => {
    expect(githubBindingConfigSchema.parse({ repositories: ["a/b"] })).toEqual({
      repositories: ["a/b"],
      permissions: { contents: "read", metadata: "read" },
    });
  });

  it("requires at least one repository and only read or write levels", () => {
    expect(githubBindingConfigSchema.safeParse({ repositories: [] }).success).toBe(false);
    expect(
      githubBindingConfigSchema.safeParse({
        repositories: ["a/b"],
        permissions: { contents: "admin" },
      }).success,
    ).toBe(false);
    expect(
      githubBindingConfigSchema.safeParse({ repositories: ["a/b"], extra: true }).success,
    ).toBe(false);
  });
});

describe("validateGitHubBinding", () => {
  it("accepts well-formed repositories, including EMU logins and dotted names", () => {
    expect(
      issuesOf({ repositories: ["octo-org/widgets", "dev_acme/site.github.io", "a/b_c-d.e"] }),
    ).toEqual([]);
  });

  it("reports each malformed repository at its index", () => {
    expect(
      issuesOf({
        repositories: [
          "octo-org",
          "octo-org/widgets/extra",
          "-lead/x",
          "octo/..",
          "octo/repo.git",
          "octo/has space",
          "ok/fine",
        ],
      }),
    ).toEqual(
      [0, 1, 2, 3, 4, 5].map((i) => ({
        code: "github.invalid_repository",
        field: `repositories.${i}`,
      })),
    );
  });

  it("reports repeats case-insensitively, at the later index", () => {
    expect(issuesOf({ repositories: ["Octo/Widgets", "octo/gadgets", "octo/widgets"] })).toEqual([
      { code: "github.duplicate_repository", field: "repositories.2" },
    ]);
  });

  it("requires one owner for a GitHub App installation but not for a PAT", () => {
    const binding = { repositories: ["octo/widgets", "OCTO/gadgets", "other/tools"] };
    expect(issuesOf(binding, { methodKind: "github-app-installation" })).toEqual([
      { code: "github.repository_owner_mismatch", field: "repositories.2" },
    ]);
    expect(issuesOf(binding)).toEqual([]);
  });

  it("refuses repositories whose git paths fall under GHES API paths", () => {
    expect(
      issuesOf({ repositories: ["api/v3", "api/graphql", "api/other"] }, { target: ghes }),
    ).toEqual([
      { code: "github.repository_conflicts_with_api", field: "repositories.0" },
      { code: "github.repository_conflicts_with_api", field: "repositories.1" },
    ]);
  });

  it("checks permission names, an empty set and metadata: write", () => {
    expect(issuesOf({ repositories: ["a/b"], permissions: {} })).toEqual([
      { code: "github.invalid_permission", field: "permissions" },
    ]);
    expect(
      issuesOf({
        repositories: ["a/b"],
        permissions: { "Contents!": "read", metadata: "write", pull_requests: "write" },
      }),
    ).toEqual([
      { code: "github.invalid_permission", field: "permissions.Contents!" },
      { code: "github.invalid_permission", field: "permissions.metadata" },
    ]);
  });
});
