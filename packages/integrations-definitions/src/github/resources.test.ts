import type { ConnectionMethodKind } from "@keyway/integrations-core";
import { HttpResponse, http } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { githubCloudTargetConfigSchema } from "../github-cloud/target-config-schema";
import { githubCredentialTest, githubResourceLister } from "./resources";

const target = {
  id: "tgt_1",
  targetKey: "github-cloud",
  config: githubCloudTargetConfigSchema.parse({}),
};
const connection = (methodKind: ConnectionMethodKind) => ({
  id: "conn_1",
  methodId: methodKind === "api-key" ? "personal-access-token" : "github-app",
  methodKind,
  config: {},
  externalSubjectId: "4242",
});

const server = setupServer();
beforeAll(() => server.listen({ onUnhandledRequest: "error" }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

const repo = (fullName: string) => ({ id: fullName.length, full_name: fullName, private: true });

/** Answers only the expected bearer token, like GitHub. */
function requireToken(token: string, request: Request): Response | undefined {
  return request.headers.get("authorization") === `Bearer ${token}`
    ? undefined
    : HttpResponse.json({ message: "Bad credentials" }, { status: 401 });
}

describe("githubResourceLister", () => {
  it("lists an installation's repositories across pages", async () => {
    const all = Array.from({ length: 130 }, (_, i) => repo(`octo-org/repo-${i}`));
    server.use(
      http.get("https://api.github.com/installation/repositories", ({ request }) => {
        const refused = requireToken("ghs_installation", request);
        if (refused) return refused;
        const params = new URL(request.url).searchParams;
        const page = Number(params.get("page"));
        const perPage = Number(params.get("per_page"));
        return HttpResponse.json({
          total_count: all.length,
          repositories: all.slice((page - 1) * perPage, page * perPage),
        });
      }),
    );
    const items = await githubResourceLister.list({
      kind: "repositories",
      target,
      connection: connection("github-app-installation"),
      credential: "ghs_installation",
      fetch,
    });
    expect(items).toHaveLength(130);
    expect(items[0]).toEqual({ id: "octo-org/repo-0", label: "octo-org/repo-0" });
    expect(items[129]).toEqual({ id: "octo-org/repo-129", label: "octo-org/repo-129" });
  });

  it("lists a PAT user's repositories from /user/repos", async () => {
    server.use(
      http.get("https://api.github.com/user/repos", ({ request }) => {
        return (
          requireToken("ghp_user", request) ??
          HttpResponse.json([repo("octocat/hello"), repo("octo-org/widgets")])
        );
      }),
    );
    const items = await githubResourceLister.list({
      kind: "repositories",
      target,
      connection: connection("api-key"),
      credential: "ghp_user",
      fetch,
    });
    expect(items.map((i) => i.id)).toEqual(["octocat/hello", "octo-org/widgets"]);
  });

  it("propagates a refused credential as a permanent error", async () => {
    server.use(
      http.get("https://api.github.com/user/repos", ({ request }) =>
        requireToken("other", request),
      ),
    );
    await expect(
      githubResourceLister.list({
        kind: "repositories",
        target,
        connection: connection("api-key"),
        credential: "ghp_revoked",
        fetch,
      }),
    ).rejects.toMatchObject({ kind: "permanent", code: "http_401" });
  });
});

describe("githubCredentialTest", () => {
  it("checks a PAT with GET /user", async () => {
    server.use(
      http.get("https://api.github.com/user", ({ request }) => {
        return requireToken("ghp_user", request) ?? HttpResponse.json({ login: "octocat", id: 1 });
      }),
    );
    await expect(
      githubCredentialTest.test({
        target,
        connection: connection("api-key"),
        credential: "ghp_user",
        fetch,
      }),
    ).resolves.toEqual({ ok: true, message: "authenticated as octocat" });
  });

  it("checks an installation token with one repository of /installation/repositories", async () => {
    const perPage: (string | null)[] = [];
    server.use(
      http.get("https://api.github.com/installation/repositories", ({ request }) => {
        perPage.push(new URL(request.url).searchParams.get("per_page"));
        return (
          requireToken("ghs_installation", request) ??
          HttpResponse.json({ total_count: 3, repositories: [repo("octo-org/widgets")] })
        );
      }),
    );
    await expect(
      githubCredentialTest.test({
        target,
        connection: connection("github-app-installation"),
        credential: "ghs_installation",
        fetch,
      }),
    ).resolves.toEqual({ ok: true, message: "the installation can access 3 repositories" });
    expect(perPage).toEqual(["1"]);
  });

  it("reports a rejected credential without throwing", async () => {
    server.use(
      http.get("https://api.github.com/user", ({ request }) => requireToken("other", request)),
    );
    const result = await githubCredentialTest.test({
      target,
      connection: connection("api-key"),
      credential: "ghp_secret_value",
      fetch,
    });
    expect(result.ok).toBe(false);
    expect(result.message).toContain("HTTP 401");
    expect(result.message).not.toContain("ghp_secret_value");
  });
});
