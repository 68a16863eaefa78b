import {
  auditLog,
  connectionCredentials,
  integrationConnections,
  integrationTargets,
  newId,
} from "@keyway/db";
import type { AnyIntegrationDefinition } from "@keyway/integrations-core";
import {
  atlassianDefinition,
  githubCloudDefinition,
  httpApiDefinition,
  linearDefinition,
  openaiDefinition,
} from "@keyway/integrations-definitions";
import { and, asc, eq } from "drizzle-orm";
import { HttpResponse, http } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { FeedMessage } from "../events/invalidations";
import { createTestApp, type TestApp } from "../testing/test-app";

/**
 * Connections over HTTP on real PostgreSQL, with msw standing in for api.openai.com and
 * api.github.com. Every secret written is remembered, and the last test scans every response
 * body and log line of the whole file for them.
 */

const OPENAI_KEY = "sk-proj-conn-test-first-key-0123456789abcdefghijklmnop";
const OPENAI_KEY_ROTATED = "sk-proj-conn-test-rotated-key-9876543210zyxwvutsrq";
const GITHUB_PAT = "ghp_connTestPersonalAccessToken0123456789AB";
const ATLASSIAN_TOKEN = "ATATT3xFfGF0-conn-test-atlassian-token-value";
const HTTP_API_KEY = "billing-conn-test-api-key-5f1c2d3e4a5b6c7d8e9f";
const SECRETS = [OPENAI_KEY, OPENAI_KEY_ROTATED, GITHUB_PAT, ATLASSIAN_TOKEN, HTTP_API_KEY];

const server = setupServer();
let t: TestApp;
const responses: string[] = [];
const events: FeedMessage[] = [];

/** `t.call` that keeps every response body for the final secret scan. */
async function call(method: string, path: string, token: string | undefined, body?: unknown) {
  const response = await t.call(method, path, token, body);
  responses.push(response.text);
  return response;
}

/** Upserts a target row (targets are operator-owned; these tests only need rows to exist). */
async function putTarget(
  definition: AnyIntegrationDefinition,
  options: { targetKey?: string; enabled?: boolean; config?: Record<string, unknown> } = {},
) {
  const targetKey = options.targetKey ?? definition.variantId;
  const values = {
    id: newId("target"),
    targetKey,
    familyId: definition.familyId,
    variantId: definition.variantId,
    kind: definition.kind,
    enabled: options.enabled ?? true,
    config: options.config ?? {},
    source: "api" as const,
  };
  await t.deps.database.db
    .insert(integrationTargets)
    .values(values)
    .onConflictDoUpdate({
      target: integrationTargets.targetKey,
      set: { enabled: values.enabled, config: values.config },
    });
}

async function waitForEvent(match: (event: FeedMessage) => boolean) {
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    if (events.some(match)) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error("invalidation event not received");
}

async function auditActions(connectionId: string) {
  const rows = await t.deps.database.db
    .select({ action: auditLog.action })
    .from(auditLog)
    .where(eq(auditLog.subjectId, connectionId))
    .orderBy(asc(auditLog.seq));
  return rows.map((r) => r.action);
}

let org: Awaited<ReturnType<TestApp["createOrganization"]>>;
let other: Awaited<ReturnType<TestApp["createOrganization"]>>;

beforeAll(async () => {
  server.listen({ onUnhandledRequest: "error" });
  // Looked up per call so the fetch msw patched is the one used.
  t = await createTestApp({ fetch: (input, init) => globalThis.fetch(input, init) });
  t.deps.invalidations.subscribe((event) => events.push(event));
  await putTarget(openaiDefinition);
  await putTarget(githubCloudDefinition);
  await putTarget(linearDefinition);
  await putTarget(atlassianDefinition);
  await putTarget(httpApiDefinition, {
    targetKey: "billing-api",
    config: { baseUrl: "https://billing.example.com/v1" },
  });
  await putTarget(httpApiDefinition, {
    targetKey: "legacy-api",
    enabled: false,
    config: { baseUrl: "https://legacy.example.com" },
  });
  org = await t.createOrganization("Connections");
  other = await t.createOrganization("Elsewhere");
});
afterEach(() => server.resetHandlers());
afterAll(async () => {
  server.close();
  await t.close();
});

const BASE = "/v1/integration/connections";

function createOpenai(token: string, displayName = "OpenAI (team)", apiKey = OPENAI_KEY) {
  return call("POST", BASE, token, {
    targetKey: "openai",
    methodId: "api-key",
    displayName,
    secrets: { apiKey },
  });
}

describe("connections", () => {
  let openaiId: string;

  it("creates an API-key connection with credential version 1 and never returns the key", async () => {
    const created = await createOpenai(org.member);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      targetKey: "openai",
      variantId: "openai",
      methodId: "api-key",
      methodKind: "api-key",
      displayName: "OpenAI (team)",
      status: "active",
      config: {},
      externalSubjectId: null,
      credentialVersion: 1,
      credentialExpiresAt: null,
      lastError: null,
      secretFields: ["apiKey"],
    });
    expect(created.body.id).toMatch(/^conn_/);
    expect(created.text).not.toContain(OPENAI_KEY);
    openaiId = created.body.id;

    const credentials = await t.deps.database.db
      .select()
      .from(connectionCredentials)
      .where(eq(connectionCredentials.connectionId, openaiId));
    expect(credentials).toHaveLength(1);
    expect(credentials[0]).toMatchObject({ version: 1, kind: "secret-fields", supersededAt: null });
    expect(credentials[0]?.secretCiphertext).not.toContain(OPENAI_KEY);
    expect(await auditActions(openaiId)).toEqual(["connection.created"]);
  });

  it("lists and gets connections for viewers, filtered by target and scoped to the organization", async () => {
    const github = await call("POST", BASE, org.member, {
      targetKey: "github-cloud",
      methodId: "personal-access-token",
      displayName: "GitHub PAT",
      secrets: { token: GITHUB_PAT },
    });
    expect(github.status).toBe(201);
    expect(github.body.secretFields).toEqual(["token"]);

    const all = await call("GET", BASE, org.viewer);
    expect(all.status).toBe(200);
    // Ids sort by creation millisecond; the test clock stands still, so compare as sets.
    expect(all.body.items.map((c: { id: string }) => c.id).sort()).toEqual(
      [openaiId, github.body.id].sort(),
    );
    const onlyOpenai = await call("GET", `${BASE}?targetKey=openai`, org.viewer);
    expect(onlyOpenai.body.items.map((c: { id: string }) => c.id)).toEqual([openaiId]);
    const none = await call("GET", `${BASE}?targetKey=no-such-target`, org.viewer);
    expect(none.body.items).toEqual([]);
    const revokedOnly = await call("GET", `${BASE}?status=revoked`, org.viewer);
    expect(revokedOnly.body.items).toEqual([]);

    const one = await call("GET", `${BASE}/${openaiId}`, org.viewer);
    expect(one.status).toBe(200);
    expect(one.body).toEqual(all.body.items.find((c: { id: string }) => c.id === openaiId));

    const elsewhere = await call("GET", BASE, other.admin);
    expect(elsewhere.body.items).toEqual([]);
  });

  it("answers 404 for another organization's id and for unknown ids on every id route", async () => {
    const foreign = await createOpenai(other.member, "Other org's OpenAI");
    expect(foreign.status).toBe(201);
    const ids = [foreign.body.id, newId("connection"), "not-an-id"];
    for (const id of ids) {
      const attempts = [
        await call("GET", `${BASE}/${id}`, org.admin),
        await call("PATCH", `${BASE}/${id}`, org.admin, { displayName: "mine now" }),
        await call("POST", `${BASE}/${id}/secret`, org.admin, { secrets: { apiKey: "x" } }),
        await call("POST", `${BASE}/${id}/test`, org.admin),
        await call("GET", `${BASE}/${id}/resources/repositories`, org.admin),
        await call("DELETE", `${BASE}/${id}`, org.admin),
      ];
      for (const attempt of attempts) {
        expect(attempt.status).toBe(404);
        expect(attempt.body.error.code).toBe("not_found");
      }
    }
    // The other organization's connection is untouched.
    const still = await call("GET", `${BASE}/${foreign.body.id}`, other.viewer);
    expect(still.body).toMatchObject({ displayName: "Other org's OpenAI", status: "active" });
    expect(still.body.credentialVersion).toBe(1);
  });

  it("enforces roles: viewers read, members write, admins revoke, operators stay out", async () => {
    expect((await createOpenai(org.viewer)).status).toBe(403);
    expect(
      (await call("PATCH", `${BASE}/${openaiId}`, org.viewer, { displayName: "x" })).status,
    ).toBe(403);
    expect(
      (await call("POST", `${BASE}/${openaiId}/secret`, org.viewer, { secrets: { apiKey: "x" } }))
        .status,
    ).toBe(403);
    expect((await call("POST", `${BASE}/${openaiId}/test`, org.viewer)).status).toBe(403);
    expect(
      (await call("GET", `${BASE}/${openaiId}/resources/repositories`, org.viewer)).status,
    ).toBe(403);
    expect((await call("DELETE", `${BASE}/${openaiId}`, org.member)).status).toBe(403);
    expect((await call("GET", BASE, t.operatorToken)).status).toBe(403);
    expect((await call("GET", BASE, undefined)).status).toBe(401);
    const after = await call("GET", `${BASE}/${openaiId}`, org.viewer);
    expect(after.body).toMatchObject({ displayName: "OpenAI (team)", status: "active" });
  });

  it("answers malformed bodies with 400 field issues and writes nothing", async () => {
    const before = await call("GET", BASE, org.viewer);
    const issuesOf = (r: { body: { error: { details: { issues: { field: string }[] } } } }) =>
      r.body.error.details.issues.map((i) => i.field).sort();
    const valid = {
      targetKey: "openai",
      methodId: "api-key",
      displayName: "x",
      secrets: { apiKey: OPENAI_KEY },
    };

    const unknownField = await call("POST", BASE, org.member, { ...valid, status: "active" });
    expect(unknownField.status).toBe(400);
    expect(unknownField.body.error.code).toBe("invalid_request");

    const wrongTypes = await call("POST", BASE, org.member, {
      ...valid,
      displayName: 7,
      secrets: { apiKey: 42 },
    });
    expect(wrongTypes.status).toBe(400);
    expect(issuesOf(wrongTypes)).toEqual(["displayName", "secrets.apiKey"]);

    const missingSecret = await call("POST", BASE, org.member, { ...valid, secrets: {} });
    expect(missingSecret.status).toBe(400);
    expect(missingSecret.body.error.details.issues).toEqual([
      expect.objectContaining({ field: "secrets.apiKey", code: "missing_secret_field" }),
    ]);

    const extraSecret = await call("POST", BASE, org.member, {
      ...valid,
      secrets: { apiKey: OPENAI_KEY, organizationKey: HTTP_API_KEY },
    });
    expect(extraSecret.status).toBe(400);
    expect(extraSecret.body.error.details.issues).toEqual([
      expect.objectContaining({ field: "secrets.organizationKey", code: "unknown_secret_field" }),
    ]);

    const configForSchemaless = await call("POST", BASE, org.member, {
      ...valid,
      config: { region: "eu" },
    });
    expect(configForSchemaless.status).toBe(400);
    expect(issuesOf(configForSchemaless)).toEqual(["config"]);

    const badAtlassianConfig = await call("POST", BASE, org.member, {
      targetKey: "atlassian",
      methodId: "api-token",
      displayName: "Jira",
      config: { email: "not-an-email", site: "x" },
      secrets: { apiToken: ATLASSIAN_TOKEN },
    });
    expect(badAtlassianConfig.status).toBe(400);
    expect(issuesOf(badAtlassianConfig)).toEqual(["config.email", "config.site"]);

    const malformed = await call("POST", BASE, org.member, "{not json");
    expect(malformed.status).toBe(400);

    const after = await call("GET", BASE, org.viewer);
    expect(after.body.items).toEqual(before.body.items);
  });

  it("creates a connection whose method has a config schema, storing the config", async () => {
    const created = await call("POST", BASE, org.member, {
      targetKey: "atlassian",
      methodId: "api-token",
      displayName: "Jira",
      config: { email: "dev@example.com" },
      secrets: { apiToken: ATLASSIAN_TOKEN },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      config: { email: "dev@example.com" },
      secretFields: ["apiToken"],
    });
  });

  it("answers unusable references with 422 codes and writes nothing", async () => {
    const before = await t.deps.database.db
      .select({ id: integrationConnections.id })
      .from(integrationConnections)
      .where(eq(integrationConnections.organizationId, org.id));
    const create = (body: Record<string, unknown>) =>
      call("POST", BASE, org.member, {
        displayName: "x",
        secrets: { apiKey: HTTP_API_KEY },
        ...body,
      });

    const missing = await create({ targetKey: "no-such-target", methodId: "api-key" });
    expect(missing.status).toBe(422);
    expect(missing.body.error.code).toBe("target_not_found");

    const disabled = await create({ targetKey: "legacy-api", methodId: "api-key" });
    expect(disabled.status).toBe(422);
    expect(disabled.body.error.code).toBe("target_disabled");

    const unknownMethod = await create({ targetKey: "openai", methodId: "oauth2" });
    expect(unknownMethod.status).toBe(422);
    expect(unknownMethod.body.error.code).toBe("method_not_found");
    expect(unknownMethod.body.error.details.methods).toEqual(["api-key"]);

    const oauth = await create({ targetKey: "linear", methodId: "oauth2", secrets: {} });
    expect(oauth.status).toBe(422);
    expect(oauth.body.error.code).toBe("method_not_supported_here");
    expect(oauth.body.error.details).toEqual({
      methodKind: "oauth2-authorization-code",
      flow: "POST /v1/integration/connections/oauth2/start",
    });

    const app = await create({ targetKey: "github-cloud", methodId: "github-app", secrets: {} });
    expect(app.status).toBe(422);
    expect(app.body.error.details.flow).toBe("POST /v1/integration/connections/github-app/start");

    const clientCredentials = await create({
      targetKey: "billing-api",
      methodId: "client-credentials",
      config: { clientId: "keyway" },
      secrets: { clientSecret: HTTP_API_KEY },
    });
    // Client credentials are created here, but this target names no token endpoint.
    expect(clientCredentials.status).toBe(422);
    expect(clientCredentials.body.error.code).toBe("oauth2_client_not_configured");

    const after = await t.deps.database.db
      .select({ id: integrationConnections.id })
      .from(integrationConnections)
      .where(eq(integrationConnections.organizationId, org.id));
    expect(after).toEqual(before);
  });

  it("updates the display name and config and publishes connection.updated", async () => {
    const jira = (await call("GET", `${BASE}?targetKey=atlassian`, org.viewer)).body.items[0];
    const renamed = await call("PATCH", `${BASE}/${jira.id}`, org.member, {
      displayName: "Jira (platform)",
      config: { email: "platform@example.com" },
    });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({
      displayName: "Jira (platform)",
      config: { email: "platform@example.com" },
      credentialVersion: 1,
    });
    await waitForEvent((e) => e.type === "connection.updated" && e.connectionId === jira.id);

    const badConfig = await call("PATCH", `${BASE}/${jira.id}`, org.member, {
      config: { email: "nope" },
    });
    expect(badConfig.status).toBe(400);
    expect(badConfig.body.error.details.issues[0].field).toBe("config.email");
    const empty = await call("PATCH", `${BASE}/${jira.id}`, org.member, {});
    expect(empty.status).toBe(400);
    const unknown = await call("PATCH", `${BASE}/${jira.id}`, org.member, { status: "error" });
    expect(unknown.status).toBe(400);

    const stored = await call("GET", `${BASE}/${jira.id}`, org.viewer);
    expect(stored.body.config).toEqual({ email: "platform@example.com" });
    expect(await auditActions(jira.id)).toEqual(["connection.created", "connection.updated"]);
  });

  it("tests an OpenAI key against the provider: ok on 200, with the key sent as bearer", async () => {
    const seen: (string | null)[] = [];
    server.use(
      http.get("https://api.openai.com/v1/models", ({ request }) => {
        seen.push(request.headers.get("authorization"));
        return HttpResponse.json({ object: "list", data: [{ id: "gpt-6.2-sol" }] });
      }),
    );
    const tested = await call("POST", `${BASE}/${openaiId}/test`, org.member);
    expect(tested.status).toBe(200);
    expect(tested.body).toEqual({ ok: true, message: "OpenAI accepted the API key" });
    expect(seen).toEqual([`Bearer ${OPENAI_KEY}`]);
    expect(tested.text).not.toContain(OPENAI_KEY);
  });

  it("reports a rejected key as ok false without changing the connection", async () => {
    server.use(
      http.get("https://api.openai.com/v1/models", () =>
        HttpResponse.json(
          {
            error: {
              message: `Incorrect API key provided: ${OPENAI_KEY}.`,
              type: "invalid_request_error",
              code: "invalid_api_key",
            },
          },
          { status: 401 },
        ),
      ),
    );
    const tested = await call("POST", `${BASE}/${openaiId}/test`, org.member);
    expect(tested.status).toBe(200);
    expect(tested.body.ok).toBe(false);
    expect(tested.body.message).toContain("401");
    expect(tested.text).not.toContain(OPENAI_KEY);
    const after = await call("GET", `${BASE}/${openaiId}`, org.viewer);
    expect(after.body).toMatchObject({ status: "active", lastError: null });
    expect(await auditActions(openaiId)).toEqual([
      "connection.created",
      "connection.tested",
      "connection.tested",
    ]);
  });

  it("answers ok null for a provider without a credential test", async () => {
    const created = await call("POST", BASE, org.member, {
      targetKey: "billing-api",
      methodId: "api-key",
      displayName: "Billing",
      secrets: { apiKey: HTTP_API_KEY },
    });
    expect(created.status).toBe(201);
    const tested = await call("POST", `${BASE}/${created.body.id}/test`, org.member);
    expect(tested.status).toBe(200);
    expect(tested.body).toEqual({ ok: null, message: "this provider has no credential test" });
  });

  it("lists GitHub repositories with a personal access token", async () => {
    const github = (await call("GET", `${BASE}?targetKey=github-cloud`, org.viewer)).body.items[0];
    const seen: (string | null)[] = [];
    server.use(
      http.get("https://api.github.com/user/repos", ({ request }) => {
        seen.push(request.headers.get("authorization"));
        return HttpResponse.json([
          { id: 1, full_name: "octocat/hello-world" },
          { id: 2, full_name: "octo-org/widgets" },
        ]);
      }),
    );
    const listed = await call("GET", `${BASE}/${github.id}/resources/repositories`, org.member);
    expect(listed.status).toBe(200);
    expect(listed.body.items).toEqual([
      { id: "octocat/hello-world", label: "octocat/hello-world" },
      { id: "octo-org/widgets", label: "octo-org/widgets" },
    ]);
    expect(seen).toEqual([`Bearer ${GITHUB_PAT}`]);

    const unknownKind = await call("GET", `${BASE}/${github.id}/resources/teams`, org.member);
    expect(unknownKind.status).toBe(422);
    expect(unknownKind.body.error).toMatchObject({
      code: "resources_not_supported",
      details: { kinds: ["repositories"] },
    });
    const noResources = await call("GET", `${BASE}/${openaiId}/resources/models`, org.member);
    expect(noResources.status).toBe(422);
    expect(noResources.body.error.code).toBe("resources_not_supported");

    server.use(
      http.get("https://api.github.com/user/repos", () =>
        HttpResponse.json({ message: "Bad credentials" }, { status: 401 }),
      ),
    );
    const refused = await call("GET", `${BASE}/${github.id}/resources/repositories`, org.member);
    expect(refused.status).toBe(502);
    expect(refused.body.error.code).toBe("provider_request_failed");
  });

  it("rotates the secret into version 2, supersedes version 1 and publishes credential.rotated", async () => {
    const rotated = await call("POST", `${BASE}/${openaiId}/secret`, org.member, {
      secrets: { apiKey: OPENAI_KEY_ROTATED },
    });
    expect(rotated.status).toBe(200);
    expect(rotated.body).toMatchObject({ credentialVersion: 2, status: "active" });
    expect(rotated.text).not.toContain(OPENAI_KEY_ROTATED);
    await waitForEvent(
      (e) =>
        e.type === "credential.rotated" && e.connectionId === openaiId && e.credentialVersion === 2,
    );

    const versions = await t.deps.database.db
      .select()
      .from(connectionCredentials)
      .where(eq(connectionCredentials.connectionId, openaiId))
      .orderBy(asc(connectionCredentials.version));
    expect(versions.map((v) => [v.version, v.supersededAt !== null])).toEqual([
      [1, true],
      [2, false],
    ]);

    // The provider now sees the new key.
    const seen: (string | null)[] = [];
    server.use(
      http.get("https://api.openai.com/v1/models", ({ request }) => {
        seen.push(request.headers.get("authorization"));
        return HttpResponse.json({ object: "list", data: [] });
      }),
    );
    expect((await call("POST", `${BASE}/${openaiId}/test`, org.member)).body.ok).toBe(true);
    expect(seen).toEqual([`Bearer ${OPENAI_KEY_ROTATED}`]);

    const badRotation = await call("POST", `${BASE}/${openaiId}/secret`, org.member, {
      secrets: { token: OPENAI_KEY },
    });
    expect(badRotation.status).toBe(400);
    expect(
      badRotation.body.error.details.issues.map((i: { code: string }) => i.code).sort(),
    ).toEqual(["missing_secret_field", "unknown_secret_field"]);
    expect((await call("GET", `${BASE}/${openaiId}`, org.viewer)).body.credentialVersion).toBe(2);
    expect(await auditActions(openaiId)).toContain("connection.secret_rotated");
  });

  it("makes a connection in error active again when its secret is rotated", async () => {
    const billing = (await call("GET", `${BASE}?targetKey=billing-api`, org.viewer)).body.items[0];
    await t.deps.database.db
      .update(integrationConnections)
      .set({ status: "error", lastError: "the API refused the key (HTTP 401)" })
      .where(eq(integrationConnections.id, billing.id));
    expect((await call("GET", `${BASE}/${billing.id}`, org.viewer)).body).toMatchObject({
      status: "error",
      lastError: "the API refused the key (HTTP 401)",
    });
    const rotated = await call("POST", `${BASE}/${billing.id}/secret`, org.member, {
      secrets: { apiKey: `${HTTP_API_KEY}-2` },
    });
    expect(rotated.status).toBe(200);
    expect(rotated.body).toMatchObject({ status: "active", lastError: null, credentialVersion: 2 });
  });

  it("refuses to test or list resources once the target is disabled", async () => {
    const github = (await call("GET", `${BASE}?targetKey=github-cloud`, org.viewer)).body.items[0];
    await putTarget(githubCloudDefinition, { enabled: false });
    try {
      const tested = await call("POST", `${BASE}/${github.id}/test`, org.member);
      expect(tested.status).toBe(422);
      expect(tested.body.error.code).toBe("target_disabled");
      const listed = await call("GET", `${BASE}/${github.id}/resources/repositories`, org.member);
      expect(listed.status).toBe(422);
    } finally {
      await putTarget(githubCloudDefinition, { enabled: true });
    }
  });

  it("revokes a connection: the record stays, its secrets go, and it can no longer be used", async () => {
    const revoked = await call("DELETE", `${BASE}/${openaiId}`, org.admin);
    expect(revoked.status).toBe(204);
    await waitForEvent((e) => e.type === "connection.revoked" && e.connectionId === openaiId);

    const shown = await call("GET", `${BASE}/${openaiId}`, org.viewer);
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ status: "revoked", secretFields: [] });
    const listed = await call("GET", `${BASE}?status=revoked`, org.viewer);
    expect(listed.body.items.map((c: { id: string }) => c.id)).toEqual([openaiId]);
    const credentials = await t.deps.database.db
      .select()
      .from(connectionCredentials)
      .where(eq(connectionCredentials.connectionId, openaiId));
    expect(credentials).toEqual([]);

    for (const attempt of [
      await call("POST", `${BASE}/${openaiId}/secret`, org.member, {
        secrets: { apiKey: OPENAI_KEY },
      }),
      await call("POST", `${BASE}/${openaiId}/test`, org.member),
      await call("PATCH", `${BASE}/${openaiId}`, org.member, { displayName: "again" }),
    ]) {
      expect(attempt.status).toBe(409);
      expect(attempt.body.error.code).toBe("connection_revoked");
    }
    // Revoking twice is harmless and records nothing new.
    expect((await call("DELETE", `${BASE}/${openaiId}`, org.admin)).status).toBe(204);
    const actions = await auditActions(openaiId);
    expect(actions.filter((a) => a === "connection.revoked")).toHaveLength(1);
  });

  it("documents every route in the OpenAPI document", async () => {
    const doc = await call("GET", "/openapi.json", undefined);
    expect(Object.keys(doc.body.paths)).toEqual(
      expect.arrayContaining([
        BASE,
        `${BASE}/{id}`,
        `${BASE}/{id}/secret`,
        `${BASE}/{id}/test`,
        `${BASE}/{id}/resources/{kind}`,
      ]),
    );
  });

  it("never shows a secret in any response or log line of this file", async () => {
    expect(responses.length).toBeGreaterThan(50);
    expect(t.logger.lines.length).toBeGreaterThan(50);
    const audit = await t.deps.database.db
      .select({ details: auditLog.details })
      .from(auditLog)
      .where(and(eq(auditLog.organizationId, org.id)));
    const haystacks = [...responses, ...t.logger.lines, JSON.stringify(audit)];
    for (const secret of SECRETS) {
      for (const text of haystacks) expect(text).not.toContain(secret);
    }
  });
});
