import { toJsonSchemaForm } from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import {
  compileSingle,
  type DefinitionFixture,
  describeDefinitionContract,
  FIXTURE_IDS,
} from "../testing/definition-contract";
import { githubEnterpriseServerDefinition } from "./definition";
import { githubEnterpriseServerTargetConfigSchema } from "./target-config-schema";

const targetSecrets = {
  appId: "17",
  appPrivateKeyPem:
    "-----BEGIN RSA PRIVATE KEY-----\nghes-fixture-not-a-real-key\n-----END RSA PRIVATE KEY-----",
  clientId: "Iv1.ghesfixture0001",
  clientSecret: "ghes-fixture-client-secret-9b2e",
  webhookSecret: "ghes-fixture-webhook-secret-41d0",
};

const appFixture: DefinitionFixture = {
  target: {
    config: { webBaseUrl: "https://ghe.example.com", appSlug: "keyway" },
    secrets: targetSecrets,
  },
  connection: { methodId: "github-app", externalSubjectId: "9", secretValues: [] },
  binding: { config: { repositories: ["platform/api-gateway", "platform/deploy"] } },
  invalidBinding: {
    config: { repositories: ["platform/api-gateway"], permissions: { metadata: "write" } },
    issues: [{ code: "github.invalid_permission", field: "permissions.metadata" }],
  },
};

const patFixture: DefinitionFixture = {
  ...appFixture,
  connection: {
    methodId: "personal-access-token",
    secretValues: ["ghp_ghesFixtureToken0000000000000000000"],
  },
};

describeDefinitionContract(githubEnterpriseServerDefinition, appFixture);
describeDefinitionContract(githubEnterpriseServerDefinition, patFixture);

describe("githubEnterpriseServerDefinition forms", () => {
  it("places every form hint on a real field", () => {
    const d = githubEnterpriseServerDefinition;
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

describe("github-enterprise-server target config", () => {
  it("requires the web URL: the default target's empty config does not parse", () => {
    const result = githubEnterpriseServerTargetConfigSchema.safeParse({});
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.path.join("."))).toEqual(["webBaseUrl"]);
  });

  it("derives the API, GraphQL and uploads endpoints under /api on the server's host", () => {
    expect(
      githubEnterpriseServerTargetConfigSchema.parse({ webBaseUrl: "https://GHE.example.com/" }),
    ).toEqual({
      edition: "enterprise-server",
      webBaseUrl: "https://ghe.example.com",
      apiBaseUrl: "https://ghe.example.com/api/v3",
      graphqlUrl: "https://ghe.example.com/api/graphql",
      uploadsBaseUrl: "https://ghe.example.com/api/uploads",
    });
  });

  it("accepts explicit endpoint overrides", () => {
    expect(
      githubEnterpriseServerTargetConfigSchema.parse({
        webBaseUrl: "https://ghe.example.com",
        apiBaseUrl: "https://ghe-api.example.com:8443/api/v3",
        graphqlUrl: "https://ghe-api.example.com:8443/api/graphql",
      }),
    ).toEqual({
      edition: "enterprise-server",
      webBaseUrl: "https://ghe.example.com",
      apiBaseUrl: "https://ghe-api.example.com:8443/api/v3",
      graphqlUrl: "https://ghe-api.example.com:8443/api/graphql",
      uploadsBaseUrl: "https://ghe.example.com/api/uploads",
    });
  });
});

describe("github-enterprise-server compile", () => {
  it("routes git and the /api paths on the server's host without overlap", () => {
    const result = compileSingle(githubEnterpriseServerDefinition, appFixture);
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    const credential = {
      connectionId: FIXTURE_IDS.connection,
      secretType: "github_installation_token",
      resolver: "github_app_installation_token",
    };
    expect(result.plan.routes).toEqual([
      {
        id: "bind_fixture.route.0",
        bindingId: FIXTURE_IDS.binding,
        match: {
          hosts: ["ghe.example.com"],
          methods: ["GET", "POST"],
          pathPrefixes: [
            "/platform/api-gateway.git/git-upload-pack",
            "/platform/api-gateway.git/info/lfs",
            "/platform/api-gateway.git/info/refs",
            "/platform/api-gateway/git-upload-pack",
            "/platform/api-gateway/info/refs",
            "/platform/deploy.git/git-upload-pack",
            "/platform/deploy.git/info/lfs",
            "/platform/deploy.git/info/refs",
            "/platform/deploy/git-upload-pack",
            "/platform/deploy/info/refs",
          ],
          excludeQuery: [{ name: "service", values: ["git-receive-pack"] }],
        },
        upstream: { baseUrl: "https://ghe.example.com" },
        auth: { type: "basic", name: "authorization", username: "x-access-token" },
        credential,
      },
      {
        id: "bind_fixture.route.1",
        bindingId: FIXTURE_IDS.binding,
        match: {
          hosts: ["ghe.example.com"],
          pathPrefixes: [
            "/api/graphql",
            "/api/uploads/repos/platform/api-gateway",
            "/api/uploads/repos/platform/deploy",
            "/api/v3/repos/platform/api-gateway",
            "/api/v3/repos/platform/deploy",
          ],
        },
        upstream: { baseUrl: "https://ghe.example.com" },
        auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
        credential,
      },
    ]);
    expect(result.plan.workspaceSources).toEqual([
      {
        id: "bind_fixture.source.0",
        bindingId: FIXTURE_IDS.binding,
        kind: "git",
        url: "https://ghe.example.com/platform/api-gateway.git",
        path: "api-gateway",
      },
      {
        id: "bind_fixture.source.1",
        bindingId: FIXTURE_IDS.binding,
        kind: "git",
        url: "https://ghe.example.com/platform/deploy.git",
        path: "deploy",
      },
    ]);
  });

  it("gives overridden API hosts their own routes", () => {
    const result = compileSingle(githubEnterpriseServerDefinition, {
      ...appFixture,
      target: {
        ...appFixture.target,
        config: {
          webBaseUrl: "https://ghe.example.com",
          apiBaseUrl: "https://ghe-api.example.com:8443/api/v3",
        },
      },
    });
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    expect(result.plan.routes.map((r) => ({ match: r.match, upstream: r.upstream }))).toEqual([
      expect.objectContaining({ upstream: { baseUrl: "https://ghe.example.com" } }),
      {
        match: {
          hosts: ["ghe-api.example.com:8443"],
          pathPrefixes: ["/api/v3/repos/platform/api-gateway", "/api/v3/repos/platform/deploy"],
        },
        upstream: { baseUrl: "https://ghe-api.example.com:8443" },
      },
      {
        match: {
          hosts: ["ghe.example.com"],
          pathPrefixes: [
            "/api/graphql",
            "/api/uploads/repos/platform/api-gateway",
            "/api/uploads/repos/platform/deploy",
          ],
        },
        upstream: { baseUrl: "https://ghe.example.com" },
      },
    ]);
  });

  it("refuses a repository whose git paths fall under the API paths", () => {
    const result = compileSingle(githubEnterpriseServerDefinition, appFixture, {
      bindingConfig: { repositories: ["api/v3"] },
    });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.errors[0]?.code).toBe("binding_validation_failed");
      expect(result.errors[0]?.issues?.map((i) => [i.code, i.field])).toEqual([
        ["github.repository_conflicts_with_api", "repositories.0"],
      ]);
    }
  });
});
