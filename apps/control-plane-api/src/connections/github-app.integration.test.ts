import { generateKeyPairSync } from "node:crypto";
import { auditLog, integrationConnections, oauthSessions } from "@keyway/db";
import {
  createGitHubAppStandIn,
  type GitHubAppStandIn,
  type GitHubAppStandInOptions,
} from "@keyway/integrations-definitions/testing/github-app-stand-in";
import { and, asc, eq } from "drizzle-orm";
import { setupServer } from "msw/node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, createTestClock, type TestApp } from "../testing/test-app";

/**
 * The GitHub App installation flow through the real API (SPEC §5 github, §6.2), with msw standing
 * in for GitHub (`github-app-stand-in.ts`, shaped from GitHub's documentation): start, install,
 * GitHub's redirect back, the ownership check, the connection, its test, its resources and its
 * installation tokens; and every refusal, each leaving nothing but an audit entry.
 */

const PUBLIC_URL = "https://keyway.example.test";
const CONSOLE = "https://console.example.test";
const CLIENT_ID = "Iv23liKeywayTest";
const CLIENT_SECRET = "gh-app-client-secret-value-0123456789";

const { privateKey: appKeyPem, publicKey: appPublicPem } = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  privateKeyEncoding: { type: "pkcs1", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" },
});

const server = setupServer();
const clock = createTestClock();
let t: TestApp;
let github: GitHubAppStandIn;
let acme: Awaited<ReturnType<TestApp["createOrganization"]>>;
let other: Awaited<ReturnType<TestApp["createOrganization"]>>;

const callbackPath = (targetKey: string) => `/p/integration/github-app/${targetKey}/callback`;

/** The app as the operator registered it on GitHub. */
function appRegistration(
  overrides: Partial<GitHubAppStandInOptions> = {},
): GitHubAppStandInOptions {
  return {
    webBaseUrl: "https://github.com",
    apiBaseUrl: "https://api.github.com",
    appSlug: "keyway-test",
    edition: "cloud",
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    publicKeyPem: appPublicPem,
    issuer: CLIENT_ID,
    callbackUrl: `${PUBLIC_URL}${callbackPath("gh-app")}`,
    now: () => clock.now(),
    ...overrides,
  };
}

beforeAll(async () => {
  t = await createTestApp({
    clock,
    // Looked up per call so requests go through msw's patched fetch.
    fetch: (input, init) => globalThis.fetch(input, init),
    settings: { publicUrl: PUBLIC_URL, allowedRedirectOrigins: [CONSOLE] },
  });
  github = createGitHubAppStandIn(appRegistration());
  server.listen({ onUnhandledRequest: "error" });
  server.use(...github.handlers);
  const secrets = {
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    appPrivateKeyPem: appKeyPem,
  };
  for (const [targetKey, appSlug] of [
    ["gh-app", "keyway-test"],
    ["gh-other", "keyway-other"],
  ] as const) {
    const created = await t.call("POST", "/v1/operator/targets", t.operatorToken, {
      targetKey,
      variantId: "github-cloud",
      config: { appSlug },
      secrets,
    });
    expect(created.status, created.text).toBe(201);
  }
  acme = await t.createOrganization("Acme");
  other = await t.createOrganization("Other");
});
afterAll(async () => {
  server.close();
  await t.close();
});

async function start(
  token = acme.member,
  body: Record<string, unknown> = { targetKey: "gh-app", redirectAfter: `${CONSOLE}/connected` },
) {
  const started = await t.call("POST", "/v1/integration/connections/github-app/start", token, body);
  expect(started.status, started.text).toBe(201);
  return started.body as { installUrl: string; callbackUrl: string; expiresAt: string };
}

/** Follows GitHub's redirect back to Keyway as a browser would. */
async function visit(callbackUrl: string, accept = "text/html") {
  const url = new URL(callbackUrl);
  expect(url.origin).toBe(PUBLIC_URL);
  return t.call("GET", `${url.pathname}${url.search}`, undefined, undefined, { accept });
}

function stateOf(installUrl: string): string {
  return new URL(installUrl).searchParams.get("state") ?? "";
}

/** Row counts and contents of everything a completed flow writes, for "nothing written". */
async function written() {
  const db = t.deps.database.db;
  const connections = await db.select().from(integrationConnections);
  const states = await db
    .select({ id: oauthSessions.id, usedAt: oauthSessions.usedAt })
    .from(oauthSessions);
  return JSON.stringify({ connections, states });
}

async function lastRefusal() {
  const [entry] = await t.deps.database.db
    .select()
    .from(auditLog)
    .where(eq(auditLog.action, "connection.install_refused"))
    .orderBy(asc(auditLog.seq))
    .then((rows) => rows.slice(-1));
  return entry;
}

async function connectionsOfInstallation(installationId: number) {
  return t.deps.database.db
    .select()
    .from(integrationConnections)
    .where(eq(integrationConnections.externalSubjectId, String(installationId)));
}

describe("connecting a GitHub App installation", () => {
  it("installs, proves the user's access, connects, tests, lists and resolves end to end", async () => {
    const started = await start();
    const install = new URL(started.installUrl);
    expect(`${install.origin}${install.pathname}`).toBe(
      "https://github.com/apps/keyway-test/installations/new",
    );
    expect(started.callbackUrl).toBe(`${PUBLIC_URL}${callbackPath("gh-app")}`);
    expect(stateOf(started.installUrl)).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const redirect = github.install(started.installUrl, {
      user: "octocat",
      account: "acme",
      repositories: ["widgets", "gadgets"],
    });
    const installationId = Number(new URL(redirect).searchParams.get("installation_id"));
    const completed = await visit(redirect);
    expect(completed.status, completed.text).toBe(302);
    const back = new URL(completed.headers.get("location") ?? "");
    expect(`${back.origin}${back.pathname}`).toBe(`${CONSOLE}/connected`);
    expect(completed.headers.get("referrer-policy")).toBe("no-referrer");
    const connectionId = back.searchParams.get("connectionId") ?? "";

    const connection = await t.call(
      "GET",
      `/v1/integration/connections/${connectionId}`,
      acme.viewer,
    );
    expect(connection.body).toMatchObject({
      targetKey: "gh-app",
      methodId: "github-app",
      methodKind: "github-app-installation",
      status: "active",
      externalSubjectId: String(installationId),
      displayName: `GitHub App installation ${installationId}`,
      secretFields: [],
    });
    // The other organization does not see it.
    const hidden = await t.call("GET", `/v1/integration/connections/${connectionId}`, other.admin);
    expect(hidden.status).toBe(404);

    const [created] = await t.deps.database.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.subjectId, connectionId), eq(auditLog.action, "connection.created")));
    expect(created?.details).toMatchObject({
      installationId: String(installationId),
      via: "callback-url",
    });

    // The test mints an installation token (not narrowed) and uses it; the listing reuses it.
    const tested = await t.call(
      "POST",
      `/v1/integration/connections/${connectionId}/test`,
      acme.member,
    );
    expect(tested.body).toEqual({
      ok: true,
      message: "the installation can access 2 repositories",
    });
    const listed = await t.call(
      "GET",
      `/v1/integration/connections/${connectionId}/resources/repositories`,
      acme.member,
    );
    expect(listed.body.items.map((item: { id: string }) => item.id)).toEqual([
      "acme/widgets",
      "acme/gadgets",
    ]);
    const ofInstallation = () =>
      github.tokenRequests.filter((r) => r.installationId === String(installationId));
    expect(ofInstallation()).toEqual([
      { installationId: String(installationId), body: undefined, status: 201 },
    ]);

    // A profile binding the connection: the gateway's resolution gets a token narrowed to it.
    const profile = await t.call("POST", "/v1/sandbox-profiles", acme.member, { name: "GitHub" });
    const version = await t.call(
      "POST",
      `/v1/sandbox-profiles/${profile.body.id}/versions`,
      acme.member,
      {
        bindings: [
          {
            connectionId,
            kind: "git",
            config: { repositories: ["acme/widgets"], permissions: { contents: "read" } },
          },
        ],
      },
    );
    expect(version.status, version.text).toBe(201);
    const session = await t.call("POST", "/v1/sandbox-sessions", acme.member, {
      profileId: profile.body.id,
      version: 1,
    });
    expect(session.status, session.text).toBe(201);
    const plan = await t.call(
      "GET",
      `/v1/sandbox-profiles/${profile.body.id}/versions/1/plan`,
      acme.member,
    );
    const route = plan.body.plan.routes.find(
      (r: { credential?: { resolver?: string } }) => r.credential?.resolver !== undefined,
    );
    const resolve = async () =>
      t.call("POST", "/internal/v1/credentials/resolve", await t.gatewayAssertion(), {
        sessionId: session.body.id,
        routeId: route.id,
      });
    const first = await resolve();
    expect(first.status, first.text).toBe(200);
    expect(first.body.value).toMatch(/^ghs_/);
    expect(ofInstallation().at(-1)?.body).toEqual({
      repositories: ["widgets"],
      permissions: { contents: "read" },
    });
    const second = await resolve();
    expect(second.body.value).toBe(first.body.value);
    expect(ofInstallation()).toHaveLength(2);

    // Tokens stay in the control plane: nothing logged.
    expect(t.logger.lines.join("\n")).not.toContain(first.body.value);

    // Uninstalled on GitHub: its tokens stop working, and the test says so (changing nothing).
    github.remove(installationId);
    const failed = await t.call(
      "POST",
      `/v1/integration/connections/${connectionId}/test`,
      acme.member,
    );
    expect(failed.body).toEqual({
      ok: false,
      message: "GitHub credential test failed with HTTP 401: Bad credentials",
    });
  });

  it("answers a result page without redirectAfter, and JSON to non-browser clients", async () => {
    const page = await start(acme.member, { targetKey: "gh-app", displayName: "Acme bots" });
    const shown = await visit(github.install(page.installUrl, { user: "hubot", account: "bots" }));
    expect(shown.status).toBe(200);
    expect(shown.headers.get("content-type")).toContain("text/html");
    expect(shown.text).toContain("GitHub App connected");
    expect(shown.headers.get("cache-control")).toBe("no-store");

    const api = await start(acme.member, { targetKey: "gh-app" });
    const answered = await visit(
      github.install(api.installUrl, { user: "hubot", account: "bots-two" }),
      "application/json",
    );
    expect(answered.status).toBe(200);
    expect(answered.body).toMatchObject({
      outcome: "created",
      connection: { methodKind: "github-app-installation", status: "active" },
    });
  });

  it("completes through the API for a console, reusing an active connection of the installation", async () => {
    const first = await start();
    const redirect = new URL(github.install(first.installUrl, { user: "mona", account: "mona" }));
    const query = Object.fromEntries(redirect.searchParams);
    const completed = await t.call(
      "POST",
      "/v1/integration/connections/github-app/complete",
      acme.member,
      {
        targetKey: "gh-app",
        state: query.state,
        installationId: query.installation_id,
        setupAction: query.setup_action,
        code: query.code,
      },
    );
    expect(completed.status, completed.text).toBe(201);
    expect(completed.body.outcome).toBe("created");

    // Configuring the same installation again connects the same connection, not a second one.
    const again = await start();
    const update = new URL(
      github.install(again.installUrl, {
        user: "mona",
        installationId: Number(query.installation_id),
      }),
    );
    expect(update.searchParams.get("setup_action")).toBe("update");
    const reused = await t.call(
      "POST",
      "/v1/integration/connections/github-app/complete",
      acme.member,
      {
        targetKey: "gh-app",
        ...Object.fromEntries(
          [
            ["state", "state"],
            ["installationId", "installation_id"],
            ["setupAction", "setup_action"],
            ["code", "code"],
          ].map(([field, parameter]) => [field, update.searchParams.get(parameter ?? "")]),
        ),
      },
    );
    expect(reused.status, reused.text).toBe(200);
    expect(reused.body.outcome).toBe("existing");
    expect(reused.body.connection.id).toBe(completed.body.connection.id);
    expect(await connectionsOfInstallation(Number(query.installation_id))).toHaveLength(1);
  });

  it("reconnects a connection in error for the same installation", async () => {
    const first = await start();
    const redirect = github.install(first.installUrl, { user: "lisa", account: "lisa-co" });
    const installationId = Number(new URL(redirect).searchParams.get("installation_id"));
    const connected = await visit(redirect);
    const connectionId = new URL(connected.headers.get("location") ?? "").searchParams.get(
      "connectionId",
    );
    await t.deps.database.db
      .update(integrationConnections)
      .set({ status: "error", lastError: "installation token refused" })
      .where(eq(integrationConnections.id, connectionId ?? ""));

    const again = await start();
    const back = await visit(github.install(again.installUrl, { user: "lisa", installationId }));
    expect(back.status).toBe(302);
    expect(new URL(back.headers.get("location") ?? "").searchParams.get("connectionId")).toBe(
      connectionId,
    );
    const [row] = await connectionsOfInstallation(installationId);
    expect(row).toMatchObject({ status: "active", lastError: null });
    const actions = await t.deps.database.db
      .select({ action: auditLog.action })
      .from(auditLog)
      .where(eq(auditLog.subjectId, connectionId ?? ""))
      .orderBy(asc(auditLog.seq));
    expect(actions.map((a) => a.action)).toEqual(["connection.created", "connection.reconnected"]);
  });
});

describe("refusals: nothing written but an audit entry", () => {
  /** Sends a redirect that must be refused; checks the answer, the writes and the audit. */
  async function refused(
    send: () => Promise<{ status: number; text: string; body: unknown }>,
    expected: { status: number; code: string; reason: string; organizationId?: string | null },
  ) {
    const before = await written();
    const answer = await send();
    expect(answer.status, answer.text).toBe(expected.status);
    expect(await written()).toBe(before);
    const entry = await lastRefusal();
    expect(entry?.details).toMatchObject({ code: expected.code, reason: expected.reason });
    if (expected.organizationId !== undefined) {
      expect(entry?.organizationId).toBe(expected.organizationId);
    }
    return answer;
  }

  it("refuses a replayed state", async () => {
    const started = await start();
    const redirect = github.install(started.installUrl, { user: "replay", account: "replay" });
    expect((await visit(redirect)).status).toBe(302);
    const answer = await refused(() => visit(redirect), {
      status: 403,
      code: "install_state_used",
      reason: "state_replayed",
      organizationId: acme.id,
    });
    expect(answer.text).toContain("already used");
  });

  it("refuses another organization's state, which stays usable by its owner", async () => {
    const started = await start();
    const redirect = new URL(github.install(started.installUrl, { user: "eve", account: "eve" }));
    const body = {
      targetKey: "gh-app",
      state: redirect.searchParams.get("state"),
      installationId: redirect.searchParams.get("installation_id"),
      setupAction: "install",
      code: redirect.searchParams.get("code"),
    };
    const answer = await refused(
      () => t.call("POST", "/v1/integration/connections/github-app/complete", other.member, body),
      {
        status: 403,
        code: "install_state_invalid",
        reason: "state_of_other_organization",
        organizationId: other.id,
      },
    );
    expect((answer.body as { error: { code: string } }).error.code).toBe("install_state_invalid");
    // Another member of the right organization is not the principal who started it either.
    await refused(
      () => t.call("POST", "/v1/integration/connections/github-app/complete", acme.admin, body),
      { status: 403, code: "install_state_invalid", reason: "state_of_other_principal" },
    );
    const owner = await t.call(
      "POST",
      "/v1/integration/connections/github-app/complete",
      acme.member,
      body,
    );
    expect(owner.status, owner.text).toBe(201);
  });

  it("refuses an expired state", async () => {
    const started = await start();
    const redirect = github.install(started.installUrl, { user: "late", account: "late" });
    clock.advance(10 * 60_000 + 1_000);
    await refused(() => visit(redirect), {
      status: 403,
      code: "install_state_expired",
      reason: "state_expired",
      organizationId: acme.id,
    });
  });

  it("refuses a state brought to another target's callback URL", async () => {
    const started = await start();
    const redirect = new URL(github.install(started.installUrl, { user: "tgt", account: "tgt" }));
    await refused(() => visit(`${PUBLIC_URL}${callbackPath("gh-other")}${redirect.search}`), {
      status: 403,
      code: "install_state_invalid",
      reason: "other_target",
    });
  });

  it("refuses an installation the returning user cannot access, without trusting installation_id", async () => {
    const victim = github.addInstallation({ account: "victim-corp", users: ["victim"] });
    const started = await start();
    const setup = new URL(`${PUBLIC_URL}${callbackPath("gh-app")}`);
    setup.searchParams.set("installation_id", String(victim.id));
    setup.searchParams.set("setup_action", "install");
    setup.searchParams.set("state", stateOf(started.installUrl));
    setup.searchParams.set("code", github.issueCode("mallory"));
    const answer = await refused(() => visit(setup.toString()), {
      status: 403,
      code: "installation_not_accessible",
      reason: "installation_not_listed",
    });
    expect(answer.text).toContain(`cannot access installation ${victim.id}`);
    expect(await connectionsOfInstallation(victim.id)).toEqual([]);

    // A code GitHub never issued is refused by GitHub.
    setup.searchParams.set("code", "0123456789abcdef0123");
    await refused(() => visit(setup.toString()), {
      status: 403,
      code: "installation_not_accessible",
      reason: "code_refused:bad_verification_code",
    });
  });

  it("refuses a redirect without a code and tells the operator how to configure the app", async () => {
    const started = await start();
    // The operator registered Keyway as the Setup URL and requests no user authorization.
    const misconfigured = createGitHubAppStandIn(
      appRegistration({
        requestUserAuthorization: false,
        setupUrl: `${PUBLIC_URL}${callbackPath("gh-app")}`,
      }),
    );
    const redirect = new URL(
      misconfigured.install(started.installUrl, { user: "nocode", account: "nc" }),
    );
    expect(redirect.searchParams.has("code")).toBe(false);
    const answer = await refused(() => visit(redirect.toString()), {
      status: 422,
      code: "installation_authorization_missing",
      reason: "no_code",
    });
    expect(answer.text).toContain("Request user authorization (OAuth) during installation");
    expect(answer.text).toContain("User authorization callback URL");
  });

  it("refuses an unknown state and an unknown target", async () => {
    await refused(
      () => visit(`${PUBLIC_URL}${callbackPath("gh-app")}?installation_id=1&state=forged&code=abc`),
      { status: 403, code: "install_state_invalid", reason: "state_unknown", organizationId: null },
    );
    await refused(
      () => visit(`${PUBLIC_URL}${callbackPath("gh-nowhere")}?state=x`, "application/json"),
      {
        status: 404,
        code: "not_found",
        reason: "unknown_target",
      },
    );
  });
});

describe("starting", () => {
  it("refuses a target the operator has not set up for installations, saying what is missing", async () => {
    const created = await t.call("POST", "/v1/operator/targets", t.operatorToken, {
      targetKey: "gh-bare",
      variantId: "github-cloud",
      config: {},
    });
    expect(created.status, created.text).toBe(201);
    const refusedStart = await t.call(
      "POST",
      "/v1/integration/connections/github-app/start",
      acme.member,
      { targetKey: "gh-bare" },
    );
    expect(refusedStart.status).toBe(422);
    expect(refusedStart.body.error.code).toBe("github_app_not_configured");
    expect(refusedStart.body.error.details.missing).toHaveLength(3);
  });

  it("refuses a redirectAfter on an origin nobody allowed, and viewers", async () => {
    const before = await written();
    const evil = await t.call("POST", "/v1/integration/connections/github-app/start", acme.member, {
      targetKey: "gh-app",
      redirectAfter: "https://evil.example/steal",
    });
    expect(evil.status).toBe(422);
    expect(evil.body.error.code).toBe("redirect_not_allowed");
    // No state stored, one audit entry naming the refusal.
    expect(await written()).toBe(before);
    const entry = await lastRefusal();
    expect(entry).toMatchObject({ organizationId: acme.id, subjectId: "gh-app" });
    expect(entry?.details).toMatchObject({ code: "redirect_not_allowed", reason: "open_redirect" });
    const viewer = await t.call(
      "POST",
      "/v1/integration/connections/github-app/start",
      acme.viewer,
      { targetKey: "gh-app" },
    );
    expect(viewer.status).toBe(403);
    const apiKeyMethod = await t.call(
      "POST",
      "/v1/integration/connections/github-app/start",
      acme.member,
      { targetKey: "gh-app", methodId: "personal-access-token" },
    );
    expect(apiKeyMethod.body.error.code).toBe("method_not_supported_here");
  });

  it("never shows the client secret, the key or a token in answers or logs", async () => {
    const lines = t.logger.lines.join("\n");
    for (const secret of [CLIENT_SECRET, "BEGIN RSA PRIVATE KEY", "ghu_", "ghs_"]) {
      expect(lines).not.toContain(secret);
    }
  });
});
