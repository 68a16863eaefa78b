import { toJsonSchemaForm } from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import {
  compileSingle,
  type DefinitionFixture,
  describeDefinitionContract,
  FIXTURE_IDS,
} from "../testing/definition-contract";
import { githubCloudDefinition } from "./definition";
import { githubCloudTargetConfigSchema } from "./target-config-schema";

const targetSecrets = {
  appId: "123456",
  appPrivateKeyPem:
    "-----BEGIN RSA PRIVATE KEY-----\nfixture-not-a-real-key\n-----END RSA PRIVATE KEY-----",
  clientId: "Iv23liFixtureClientId",
  clientSecret: "fixture-client-secret-3f9a",
  webhookSecret: "fixture-webhook-secret-77c1",
};

const patFixture: DefinitionFixture = {
  target: { config: {}, secrets: targetSecrets },
  connection: {
    methodId: "personal-access-token",
    secretValues: ["github_pat_fixture_11AAAAAA0123456789"],
  },
  binding: { config: { repositories: ["octo-org/widgets"] } },
  invalidBinding: {
    config: { repositories: ["octo-org/widgets", "not a repo", "Octo-Org/Widgets"] },
    issues: [
      { code: "github.invalid_repository", field: "repositories.1" },
      { code: "github.duplicate_repository", field: "repositories.2" },
    ],
  },
};

const appFixture: DefinitionFixture = {
  ...patFixture,
  connection: { methodId: "github-app", externalSubjectId: "4242", secretValues: [] },
  invalidBinding: {
    config: { repositories: ["octo-org/widgets", "someone-else/gadgets"] },
    issues: [{ code: "github.repository_owner_mismatch", field: "repositories.1" }],
  },
};

describeDefinitionContract(githubCloudDefinition, patFixture);
describeDefinitionContract(githubCloudDefinition, appFixture);

const bearer = { type: "bearer", name: "authorization", scheme: "Bearer" } as const;
const gitAuth = { type: "basic", name: "authorization", username: "x-access-token" } as const;

describe("githubCloudDefinition forms", () => {
  it("places every form hint on a real field", () => {
    const d = githubCloudDefinition;
    expect(() =>
      toJsonSchemaForm(d.targetConfigSchema, { hints: d.targetConfigForm }),
    ).not.toThrow();
    const secrets = toJsonSchemaForm(d.targetSecretSchema, {
      hints: d.targetSecretForm,
      secret: true,
    });
    expect(Object.keys(secrets.properties ?? {})).toEqual([
      "appId",
      "appPrivateKeyPem",
      "clientId",
      "clientSecret",
      "webhookSecret",
    ]);
    expect(() => toJsonSchemaForm(d.bindingConfigSchema, { hints: d.bindingForm })).not.toThrow();
  });
});

describe("github-cloud target config", () => {
  it("resolves the empty config to the public GitHub.com hosts", () => {
    expect(githubCloudTargetConfigSchema.parse({})).toEqual({
      edition: "cloud",
      webBaseUrl: "https://github.com",
      apiBaseUrl: "https://api.github.com",
      graphqlUrl: "https://api.github.com/graphql",
      uploadsBaseUrl: "https://uploads.github.com",
    });
  });

  it("derives GraphQL and uploads from a data-residency API host", () => {
    expect(
      githubCloudTargetConfigSchema.parse({
        webBaseUrl: "https://octocorp.ghe.com/",
        apiBaseUrl: "https://api.octocorp.ghe.com",
        appSlug: "keyway-dev",
      }),
    ).toEqual({
      edition: "cloud",
      webBaseUrl: "https://octocorp.ghe.com",
      apiBaseUrl: "https://api.octocorp.ghe.com",
      graphqlUrl: "https://api.octocorp.ghe.com/graphql",
      uploadsBaseUrl: "https://uploads.octocorp.ghe.com",
      appSlug: "keyway-dev",
    });
  });

  it("assumes no uploads host beside an API URL of another shape", () => {
    const config = githubCloudTargetConfigSchema.parse({
      apiBaseUrl: "https://gh-proxy.example.com/api",
    });
    expect(config.uploadsBaseUrl).toBeUndefined();
    expect(config.graphqlUrl).toBe("https://gh-proxy.example.com/api/graphql");
  });

  it("rejects unknown fields, non-http URLs and an API that claims the whole web host", () => {
    expect(githubCloudTargetConfigSchema.safeParse({ edition: "cloud" }).success).toBe(false);
    expect(
      githubCloudTargetConfigSchema.safeParse({ apiBaseUrl: "ftp://api.github.com" }).success,
    ).toBe(false);
    const clash = githubCloudTargetConfigSchema.safeParse({ apiBaseUrl: "https://github.com" });
    expect(clash.success).toBe(false);
    expect(clash.error?.issues.map((i) => i.path.join("."))).toEqual(["apiBaseUrl"]);
  });
});

describe("github-cloud compile", () => {
  it("routes git smart-HTTP for the bound repository, the API and uploads for a PAT", () => {
    const result = compileSingle(githubCloudDefinition, patFixture);
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    const credential = { connectionId: FIXTURE_IDS.connection, secretType: "api_key" };
    expect(result.plan.routes).toEqual([
      {
        id: "bind_fixture.route.0",
        bindingId: FIXTURE_IDS.binding,
        match: {
          hosts: ["github.com"],
          methods: ["GET", "POST"],
          pathPrefixes: [
            "/octo-org/widgets.git/git-upload-pack",
            "/octo-org/widgets.git/info/lfs",
            "/octo-org/widgets.git/info/refs",
            "/octo-org/widgets/git-upload-pack",
            "/octo-org/widgets/info/refs",
          ],
          excludeQuery: [{ name: "service", values: ["git-receive-pack"] }],
        },
        upstream: { baseUrl: "https://github.com" },
        auth: gitAuth,
        credential,
      },
      {
        id: "bind_fixture.route.1",
        bindingId: FIXTURE_IDS.binding,
        match: { hosts: ["api.github.com"], pathPrefixes: ["/graphql", "/repos/octo-org/widgets"] },
        upstream: { baseUrl: "https://api.github.com" },
        auth: bearer,
        credential,
      },
      {
        id: "bind_fixture.route.2",
        bindingId: FIXTURE_IDS.binding,
        match: { hosts: ["uploads.github.com"], pathPrefixes: ["/repos/octo-org/widgets"] },
        upstream: { baseUrl: "https://uploads.github.com" },
        auth: bearer,
        credential,
      },
    ]);
    expect(result.plan.workspaceSources).toEqual([
      {
        id: "bind_fixture.source.0",
        bindingId: FIXTURE_IDS.binding,
        kind: "git",
        url: "https://github.com/octo-org/widgets.git",
        path: "widgets",
      },
    ]);
    expect(result.plan.files).toEqual([]);
    expect(result.plan.env).toEqual([]);
  });

  it("uses the installation token resolver on every route of an app connection", () => {
    const result = compileSingle(githubCloudDefinition, appFixture);
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    expect(result.plan.routes.map((r) => r.credential)).toEqual(
      Array.from({ length: 3 }, () => ({
        connectionId: FIXTURE_IDS.connection,
        secretType: "github_installation_token",
        resolver: "github_app_installation_token",
      })),
    );
  });

  it("routes git push only when the binding grants contents: write", () => {
    const result = compileSingle(githubCloudDefinition, appFixture, {
      bindingConfig: {
        repositories: ["octo-org/widgets"],
        permissions: { contents: "write", metadata: "read" },
      },
    });
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    expect(result.plan.routes[0]?.match.pathPrefixes).toEqual([
      "/octo-org/widgets.git/git-receive-pack",
      "/octo-org/widgets.git/git-upload-pack",
      "/octo-org/widgets.git/info/lfs",
      "/octo-org/widgets.git/info/refs",
      "/octo-org/widgets/git-receive-pack",
      "/octo-org/widgets/git-upload-pack",
      "/octo-org/widgets/info/refs",
    ]);
  });
});
