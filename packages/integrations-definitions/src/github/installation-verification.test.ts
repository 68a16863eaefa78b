import { OAuth2Error } from "@keyway/integrations-core";
import { HttpResponse, http } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { githubCloudTargetConfigSchema } from "../github-cloud/target-config-schema";
import { githubEnterpriseServerTargetConfigSchema } from "../github-enterprise-server/target-config-schema";
import { installUrl, verifyInstallationOwnership } from "./installation-verification";
import type { GitHubTargetConfig, GitHubTargetWithSecrets } from "./target-config";

const clock = { now: () => new Date("2025-06-01T12:00:00Z") };
const cloud = githubCloudTargetConfigSchema.parse({ appSlug: "keyway-dev" });
const target = (config: GitHubTargetConfig = cloud): GitHubTargetWithSecrets => ({
  id: "tgt_1",
  targetKey: "github-cloud",
  config,
  secrets: { clientId: "Iv23liClient", clientSecret: "client-secret-value" },
});

const server = setupServer();
beforeAll(() => server.listen({ onUnhandledRequest: "error" }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

/** GitHub's token endpoint: trades the setup-URL code for a user token when the form is right. */
function tokenEndpoint(
  received: URLSearchParams[],
  url = "https://github.com/login/oauth/access_token",
) {
  return http.post(url, async ({ request }) => {
    const form = new URLSearchParams(await request.text());
    received.push(form);
    if (request.headers.get("accept") !== "application/json")
      return HttpResponse.text("wrong accept", { status: 400 });
    const valid =
      form.get("client_id") === "Iv23liClient" &&
      form.get("client_secret") === "client-secret-value" &&
      form.get("code") === "good-code";
    // GitHub answers a refused code with 200 and an `error` field.
    return HttpResponse.json(
      valid
        ? { access_token: "ghu_userToken", token_type: "bearer", scope: "" }
        : {
            error: "bad_verification_code",
            error_description: "The code passed is incorrect or expired.",
          },
    );
  });
}

/** `GET /user/installations`, paged 100 at a time, visible only to the user token. */
function installationsEndpoint(ids: number[], url = "https://api.github.com/user/installations") {
  return http.get(url, ({ request }) => {
    if (request.headers.get("authorization") !== "Bearer ghu_userToken") {
      return HttpResponse.json({ message: "Bad credentials" }, { status: 401 });
    }
    const params = new URL(request.url).searchParams;
    const perPage = Number(params.get("per_page"));
    const page = Number(params.get("page"));
    const slice = ids.slice((page - 1) * perPage, page * perPage);
    return HttpResponse.json({
      total_count: ids.length,
      installations: slice.map((id) => ({ id })),
    });
  });
}

const manyInstallations = Array.from({ length: 150 }, (_, i) => 1000 + i);

describe("verifyInstallationOwnership", () => {
  it("accepts an installation the user can access, looking past the first page", async () => {
    const forms: URLSearchParams[] = [];
    server.use(tokenEndpoint(forms), installationsEndpoint(manyInstallations));
    await expect(
      verifyInstallationOwnership({
        target: target(),
        code: "good-code",
        installationId: "1120",
        fetch,
        clock,
      }),
    ).resolves.toBe(true);
    expect(forms.map((f) => f.get("code"))).toEqual(["good-code"]);
  });

  it("refuses an installation the user cannot access", async () => {
    server.use(tokenEndpoint([]), installationsEndpoint(manyInstallations));
    await expect(
      verifyInstallationOwnership({
        target: target(),
        code: "good-code",
        installationId: "4242",
        fetch,
        clock,
      }),
    ).resolves.toBe(false);
  });

  it("refuses a non-numeric installation id without asking GitHub", async () => {
    await expect(
      verifyInstallationOwnership({
        target: target(),
        code: "good-code",
        installationId: "12 OR 1",
        fetch,
        clock,
      }),
    ).resolves.toBe(false);
  });

  it("fails permanently on a code GitHub refuses", async () => {
    server.use(tokenEndpoint([]), installationsEndpoint([1]));
    const error = await verifyInstallationOwnership({
      target: target(),
      code: "forged-code",
      installationId: "1",
      fetch,
      clock,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuth2Error);
    expect(error instanceof OAuth2Error && [error.kind, error.code]).toEqual([
      "permanent",
      "bad_verification_code",
    ]);
  });

  it("fails temporarily when GitHub is down", async () => {
    server.use(
      http.post(
        "https://github.com/login/oauth/access_token",
        () => new HttpResponse(null, { status: 502 }),
      ),
    );
    const error = await verifyInstallationOwnership({
      target: target(),
      code: "good-code",
      installationId: "1",
      fetch,
      clock,
    }).catch((e: unknown) => e);
    expect(error instanceof OAuth2Error && error.kind).toBe("temporary");
  });

  it("uses the GHES web and API hosts", async () => {
    server.use(
      tokenEndpoint([], "https://ghe.example.com/login/oauth/access_token"),
      installationsEndpoint([9], "https://ghe.example.com/api/v3/user/installations"),
    );
    const ghes = githubEnterpriseServerTargetConfigSchema.parse({
      webBaseUrl: "https://ghe.example.com",
    });
    await expect(
      verifyInstallationOwnership({
        target: target(ghes),
        code: "good-code",
        installationId: "9",
        fetch,
        clock,
      }),
    ).resolves.toBe(true);
  });

  it("needs the app's client credentials", async () => {
    const error = await verifyInstallationOwnership({
      target: { ...target(), secrets: { clientId: "Iv23liClient" } },
      code: "good-code",
      installationId: "1",
      fetch,
      clock,
    }).catch((e: unknown) => e);
    expect(error instanceof OAuth2Error && [error.kind, error.code]).toEqual([
      "permanent",
      "missing_client_credentials",
    ]);
  });
});

describe("installUrl", () => {
  it("points at /apps/<slug> on GitHub.com and /github-apps/<slug> on GHES, carrying state", () => {
    expect(installUrl(target(), "st/ate+1")).toBe(
      "https://github.com/apps/keyway-dev/installations/new?state=st%2Fate%2B1",
    );
    const ghes = githubEnterpriseServerTargetConfigSchema.parse({
      webBaseUrl: "https://ghe.example.com",
      appSlug: "keyway",
    });
    expect(installUrl(target(ghes), "abc")).toBe(
      "https://ghe.example.com/github-apps/keyway/installations/new?state=abc",
    );
  });

  it("needs the app slug", () => {
    expect(() => installUrl(target(githubCloudTargetConfigSchema.parse({})), "abc")).toThrow(
      OAuth2Error,
    );
  });
});
