import { canonicalJson, type EgressRoute } from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import { githubCloudTargetConfigSchema } from "../github-cloud/target-config-schema";
import { githubEnterpriseServerTargetConfigSchema } from "../github-enterprise-server/target-config-schema";
import { githubAppInstallation } from "./app-installation";
import { githubBindingConfigSchema } from "./binding-config-schema";
import { githubAppInstallationTokenResolver } from "./installation-token-resolver";
import type { GitHubTargetConfig } from "./target-config";
import type { GitHubTargetSecrets } from "./target-secret-schema";

const cloud = githubCloudTargetConfigSchema.parse({ appSlug: "keyway-dev" });
const target = (config: GitHubTargetConfig, secrets: GitHubTargetSecrets = {}) => ({
  id: "tgt_1",
  targetKey: "github-cloud",
  config,
  secrets,
});
const ready: GitHubTargetSecrets = {
  clientId: "Iv23liClient",
  clientSecret: "client-secret",
  appPrivateKeyPem: "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
};

describe("githubAppInstallation", () => {
  it("says what a target lacks for installation connections", () => {
    expect(githubAppInstallation.missingSetup(target(cloud, ready))).toEqual([]);
    const bare = githubCloudTargetConfigSchema.parse({});
    expect(githubAppInstallation.missingSetup(target(bare))).toEqual([
      expect.stringContaining("appSlug"),
      expect.stringContaining("clientId and clientSecret"),
      expect.stringContaining("appPrivateKeyPem"),
    ]);
    // GHES signs with the app id, but the client id alone is accepted as the issuer too.
    const ghes = githubEnterpriseServerTargetConfigSchema.parse({
      webBaseUrl: "https://ghe.example.com",
      appSlug: "keyway",
    });
    expect(githubAppInstallation.missingSetup(target(ghes, ready))).toEqual([]);
  });

  it("sends users to the edition's install page with the state", () => {
    const url = new URL(githubAppInstallation.installUrl(target(cloud, ready), "st4te"));
    expect(`${url.origin}${url.pathname}`).toBe(
      "https://github.com/apps/keyway-dev/installations/new",
    );
    expect(url.searchParams.get("state")).toBe("st4te");
  });

  it("names the events that change an installation connection", () => {
    expect(githubAppInstallation.lifecycleOf("github.installation.deleted")).toBe("deleted");
    expect(githubAppInstallation.lifecycleOf("github.installation.suspend")).toBe("suspended");
    expect(githubAppInstallation.lifecycleOf("github.installation.unsuspend")).toBe("restored");
    expect(githubAppInstallation.lifecycleOf("github.installation_repositories.removed")).toBe(
      "changed",
    );
    expect(githubAppInstallation.lifecycleOf("github.installation.created")).toBeUndefined();
    expect(githubAppInstallation.lifecycleOf("github.push")).toBeUndefined();
  });
});

describe("installation token cache scopes", () => {
  const route = {} as EgressRoute;
  const scopeOf = (bindingConfig: unknown, installationId = "42", config = cloud) =>
    canonicalJson(
      githubAppInstallationTokenResolver.cacheScope?.({
        target: target(config, ready),
        connection: {
          id: "conn_1",
          methodId: "github-app",
          methodKind: "github-app-installation",
          config: {},
          externalSubjectId: installationId,
        },
        binding: { id: "bind_1", config: githubBindingConfigSchema.parse(bindingConfig) },
        route,
        fetch,
        clock: { now: () => new Date() },
      }),
    );

  it("is the installation and the narrowing, whatever the order of repositories or permissions", () => {
    const a = scopeOf({
      repositories: ["acme/widgets", "acme/gadgets"],
      permissions: { contents: "read", metadata: "read" },
    });
    const b = scopeOf({
      repositories: ["acme/gadgets", "acme/widgets", "acme/gadgets"],
      permissions: { metadata: "read", contents: "read" },
    });
    expect(b).toBe(a);
    expect(scopeOf({ repositories: ["acme/widgets"] })).not.toBe(a);
    expect(
      scopeOf({
        repositories: ["acme/widgets", "acme/gadgets"],
        permissions: { contents: "write", metadata: "read" },
      }),
    ).not.toBe(a);
    const one = { repositories: ["acme/widgets"] };
    expect(scopeOf(one, "43")).not.toBe(scopeOf(one));
    const ghes = githubEnterpriseServerTargetConfigSchema.parse({
      webBaseUrl: "https://ghe.example.com",
    });
    expect(scopeOf(one, "42", ghes)).not.toBe(scopeOf(one));
  });
});
