import { randomBytes } from "node:crypto";
import { auditLog, integrationTargets } from "@keyway/db";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decryptTargetSecrets } from "../credentials/secret-store";
import type { FeedMessage } from "../events/invalidations";
import { createTestApp, type TestApp } from "../testing/test-app";
import { loadTargetForUse } from "./service";
import { syncTargets } from "./sync";

let t: TestApp;
let org: Awaited<ReturnType<TestApp["createOrganization"]>>;
beforeAll(async () => {
  t = await createTestApp();
  await syncTargets(t.deps.database.db, {
    registry: t.deps.registry,
    keyRing: t.deps.keyRing,
    clock: t.deps.clock,
    configTargets: {},
  });
  org = await t.createOrganization("Targets");
});
afterAll(async () => {
  await t.close();
});

const op = (method: string, path: string, body?: unknown) =>
  t.call(method, path, t.operatorToken, body);

function nextInvalidation(match: (e: FeedMessage) => boolean): Promise<FeedMessage> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error("no invalidation arrived within 5 s"));
    }, 5000);
    const unsubscribe = t.deps.invalidations.subscribe((event) => {
      if (!match(event)) return;
      clearTimeout(timer);
      unsubscribe();
      resolve(event);
    });
  });
}

const whsec = () => `whsec_${randomBytes(32).toString("base64")}`;
const fields = (r: { body: { error: { details: { issues: { field: string }[] } } } }) =>
  r.body.error.details.issues.map((i) => i.field);

describe("operator targets API", () => {
  it("lists every target with state, source and config validity", async () => {
    const list = await op("GET", "/v1/operator/targets");
    expect(list.status).toBe(200);
    const byKey = new Map(
      list.body.items.map((i: { targetKey: string }) => [i.targetKey, i] as const),
    );
    expect(byKey.size).toBe(t.deps.registry.list().length);
    expect(byKey.get("openai")).toMatchObject({
      enabled: true,
      source: "registry",
      config: {},
      configValid: true,
      configIssues: [],
      secretFields: [],
      definition: { displayName: expect.any(String) },
    });
    const httpApi = byKey.get("http-api") as { configIssues: { field: string }[] };
    expect(httpApi).toMatchObject({ enabled: false, configValid: false });
    expect(httpApi.configIssues.map((i) => i.field)).toContain("config.baseUrl");
  });

  it("refuses organization tokens (403) and missing tokens (401) on every operator route", async () => {
    const routes: [string, string, unknown?][] = [
      ["GET", "/v1/operator/targets"],
      ["POST", "/v1/operator/targets", { targetKey: "x", variantId: "openai" }],
      ["GET", "/v1/operator/targets/openai"],
      ["PATCH", "/v1/operator/targets/openai", { displayName: "x" }],
      ["POST", "/v1/operator/targets/openai/enable"],
      ["POST", "/v1/operator/targets/openai/disable"],
      ["PUT", "/v1/operator/targets/openai/secrets", { secrets: {} }],
    ];
    for (const [method, path, body] of routes) {
      for (const token of [org.admin, org.member, org.viewer]) {
        const r = await t.call(method, path, token, body);
        expect(r.status, `${method} ${path}`).toBe(403);
        expect(r.body.error.code).toBe("forbidden");
      }
      expect((await t.call(method, path, undefined, body)).status).toBe(401);
    }
    expect((await op("GET", "/v1/operator/targets/openai")).body.enabled).toBe(true);
  });

  it("creates several targets of one definition, with write-only secrets", async () => {
    const secret = whsec();
    const created = await op("POST", "/v1/operator/targets", {
      targetKey: "billing-api",
      variantId: "http-api",
      displayName: "Billing API",
      config: { baseUrl: "https://billing.example.com/v1" },
      secrets: { webhookSecret: secret },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      targetKey: "billing-api",
      variantId: "http-api",
      familyId: "http-api",
      kind: "connector",
      enabled: true,
      source: "api",
      displayName: "Billing API",
      configValid: true,
      secretFields: ["webhookSecret"],
    });
    expect(created.body.id).toMatch(/^tgt_/);
    expect(created.text).not.toContain(secret);

    const second = await op("POST", "/v1/operator/targets", {
      targetKey: "crm-api",
      variantId: "http-api",
      enabled: false,
      config: { baseUrl: "https://crm.example.com" },
    });
    expect(second.status).toBe(201);
    expect(second.body).toMatchObject({ enabled: false, secretFields: [], displayName: null });

    const got = await op("GET", "/v1/operator/targets/billing-api");
    expect(got.status).toBe(200);
    expect(got.body.secretFields).toEqual(["webhookSecret"]);
    expect(got.text).not.toContain(secret);

    const [row] = await t.deps.database.db
      .select()
      .from(integrationTargets)
      .where(eq(integrationTargets.targetKey, "billing-api"));
    expect(row?.secretsCiphertext).not.toContain(secret);
    expect(
      decryptTargetSecrets(t.deps.keyRing, created.body.id, row?.secretsCiphertext ?? null),
    ).toEqual({ webhookSecret: secret });
    const audit = await t.deps.database.db
      .select()
      .from(auditLog)
      .where(eq(auditLog.subjectId, created.body.id));
    expect(audit.map((a) => a.action)).toEqual(["target.created"]);
    expect(JSON.stringify(audit)).not.toContain(secret);
    expect(t.logger.lines.join("\n")).not.toContain(secret);
  });

  it("answers 409 for a duplicate key, 422 for an unknown variant, 400 for bad config or secrets", async () => {
    const duplicate = await op("POST", "/v1/operator/targets", {
      targetKey: "openai",
      variantId: "openai",
    });
    expect(duplicate.status).toBe(409);
    expect(duplicate.body.error.code).toBe("target_key_taken");

    const unknown = await op("POST", "/v1/operator/targets", {
      targetKey: "mystery",
      variantId: "no-such-variant",
    });
    expect(unknown.status).toBe(422);
    expect(unknown.body.error.code).toBe("unknown_variant");

    const badConfig = await op("POST", "/v1/operator/targets", {
      targetKey: "ghes-broken",
      variantId: "github-enterprise-server",
      config: { webBaseUrl: "not a url", extra: true },
    });
    expect(badConfig.status).toBe(400);
    expect(fields(badConfig).sort()).toEqual(["config.extra", "config.webBaseUrl"]);

    const secret = `plainly-wrong-${randomBytes(6).toString("hex")}`;
    const badSecrets = await op("POST", "/v1/operator/targets", {
      targetKey: "api-broken",
      variantId: "http-api",
      config: { baseUrl: "https://x.example.com" },
      secrets: { webhookSecret: secret },
    });
    expect(badSecrets.status).toBe(400);
    expect(fields(badSecrets)).toEqual(["secrets.webhookSecret"]);
    expect(badSecrets.text).not.toContain(secret);

    const badShape = await op("POST", "/v1/operator/targets", {
      targetKey: "Not_Valid",
      variantId: "openai",
      surprise: 1,
    });
    expect(badShape.status).toBe(400);
    expect(badShape.body.error.code).toBe("invalid_request");
    expect(fields(badShape)).toContain("targetKey");

    for (const key of ["ghes-broken", "api-broken", "mystery"]) {
      expect((await op("GET", `/v1/operator/targets/${key}`)).status).toBe(404);
    }
  });

  it("updates display texts and config (re-validated), invalidating on config changes", async () => {
    const current = await op("GET", "/v1/operator/targets/crm-api");
    const invalidated = nextInvalidation(
      (e) => e.type === "target.updated" && e.targetId === current.body.id,
    );
    const patched = await op("PATCH", "/v1/operator/targets/crm-api", {
      displayName: "CRM",
      description: "Our CRM",
      config: { baseUrl: "https://crm.example.com/v2" },
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({
      displayName: "CRM",
      description: "Our CRM",
      config: { baseUrl: "https://crm.example.com/v2" },
    });
    await invalidated;

    const cleared = await op("PATCH", "/v1/operator/targets/crm-api", { displayName: null });
    expect(cleared.body.displayName).toBeNull();

    const bad = await op("PATCH", "/v1/operator/targets/crm-api", { config: { baseUrl: 1 } });
    expect(bad.status).toBe(400);
    expect(fields(bad)).toEqual(["config.baseUrl"]);
    expect((await op("GET", "/v1/operator/targets/crm-api")).body.config).toEqual({
      baseUrl: "https://crm.example.com/v2",
    });

    expect((await op("PATCH", "/v1/operator/targets/crm-api", {})).status).toBe(400);
    expect((await op("PATCH", "/v1/operator/targets/crm-api", { enabled: true })).status).toBe(400);
    expect((await op("PATCH", "/v1/operator/targets/nope", { displayName: "x" })).status).toBe(404);
  });

  it("enables only targets whose config parses, and publishes enable/disable invalidations", async () => {
    const refused = await op("POST", "/v1/operator/targets/http-api/enable");
    expect(refused.status).toBe(422);
    expect(refused.body.error.code).toBe("target_config_invalid");
    expect(refused.body.error.details.issues.map((i: { field: string }) => i.field)).toContain(
      "config.baseUrl",
    );
    expect((await op("GET", "/v1/operator/targets/http-api")).body.enabled).toBe(false);

    const id = (await op("GET", "/v1/operator/targets/crm-api")).body.id;
    const enabledEvent = nextInvalidation((e) => e.type === "target.updated" && e.targetId === id);
    const enabled = await op("POST", "/v1/operator/targets/crm-api/enable");
    expect(enabled.status).toBe(200);
    expect(enabled.body.enabled).toBe(true);
    await enabledEvent;

    const disabledEvent = nextInvalidation(
      (e) => e.type === "target.disabled" && e.targetId === id,
    );
    const disabled = await op("POST", "/v1/operator/targets/crm-api/disable");
    expect(disabled.status).toBe(200);
    expect(disabled.body.enabled).toBe(false);
    await disabledEvent;

    // Repeating a state change is a no-op without a second audit entry.
    await op("POST", "/v1/operator/targets/crm-api/disable");
    const actions = (
      await t.deps.database.db.select().from(auditLog).where(eq(auditLog.subjectId, id))
    ).map((a) => a.action);
    expect(actions.filter((a) => a === "target.disabled")).toHaveLength(1);
    expect(actions).toContain("target.enabled");

    expect((await op("POST", "/v1/operator/targets/nope/enable")).status).toBe(404);
  });

  it("replaces target secrets write-only and validates them", async () => {
    const id = (await op("GET", "/v1/operator/targets/github-cloud")).body.id;
    const pem = `-----BEGIN RSA PRIVATE KEY-----\n${randomBytes(48).toString("base64")}\n-----END RSA PRIVATE KEY-----`;
    const clientSecret = `cs-${randomBytes(16).toString("hex")}`;
    const invalidated = nextInvalidation((e) => e.type === "target.updated" && e.targetId === id);
    const put = await op("PUT", "/v1/operator/targets/github-cloud/secrets", {
      secrets: { appId: "123", appPrivateKeyPem: pem, clientId: "Iv1.abc", clientSecret },
    });
    expect(put.status).toBe(200);
    expect(put.body).toEqual({
      targetKey: "github-cloud",
      secretFields: ["appId", "appPrivateKeyPem", "clientId", "clientSecret"],
    });
    await invalidated;

    const got = await op("GET", "/v1/operator/targets/github-cloud");
    expect(got.body.secretFields).toEqual([
      "appId",
      "appPrivateKeyPem",
      "clientId",
      "clientSecret",
    ]);
    const list = await op("GET", "/v1/operator/targets");
    for (const text of [put.text, got.text, list.text, t.logger.lines.join("\n")]) {
      expect(text).not.toContain(clientSecret);
      expect(text).not.toContain(pem);
    }

    const bad = await op("PUT", "/v1/operator/targets/github-cloud/secrets", {
      secrets: { appId: clientSecret, unknownField: "x" },
    });
    expect(bad.status).toBe(400);
    expect(fields(bad).sort()).toEqual(["secrets.appId", "secrets.unknownField"]);
    expect(bad.text).not.toContain(clientSecret);

    // The secret set is replaced as a whole; `{}` clears it.
    const replaced = await op("PUT", "/v1/operator/targets/github-cloud/secrets", {
      secrets: { webhookSecret: "hook" },
    });
    expect(replaced.body.secretFields).toEqual(["webhookSecret"]);
    const cleared = await op("PUT", "/v1/operator/targets/github-cloud/secrets", { secrets: {} });
    expect(cleared.body.secretFields).toEqual([]);
    expect((await op("GET", "/v1/operator/targets/github-cloud")).body.secretFields).toEqual([]);
    expect((await op("PUT", "/v1/operator/targets/nope/secrets", { secrets: {} })).status).toBe(
      404,
    );
    expect(t.logger.lines.join("\n")).not.toContain(clientSecret);
  });
});

describe("public targets API", () => {
  it("lists only enabled, usable targets with forms and no config", async () => {
    await op("PATCH", "/v1/operator/targets/openai", { displayName: "OpenAI (company)" });
    const list = await t.call("GET", "/v1/integration/targets", org.viewer);
    expect(list.status).toBe(200);
    const keys = list.body.items.map((i: { targetKey: string }) => i.targetKey);
    expect(keys).toContain("openai");
    expect(keys).toContain("billing-api");
    expect(keys).not.toContain("http-api");
    expect(keys).not.toContain("crm-api");
    expect(keys).not.toContain("github-enterprise-server");
    expect(keys).toEqual([...keys].sort());

    const openai = list.body.items.find((i: { targetKey: string }) => i.targetKey === "openai");
    expect(openai).toMatchObject({
      displayName: "OpenAI (company)",
      kind: "agent",
      familyId: "openai",
      variantId: "openai",
      logoKey: expect.any(String),
      docsUrl: expect.any(String),
      connectionMethods: [
        {
          id: "api-key",
          kind: "api-key",
          secretFields: ["apiKey"],
          configForm: { type: "object" },
        },
      ],
      bindingForm: { type: "object" },
    });
    expect(Object.keys(openai.bindingForm.properties ?? {})).toContain("model");
    for (const item of list.body.items) {
      expect(item).not.toHaveProperty("config");
      expect(item).not.toHaveProperty("secretFields");
      expect(item).not.toHaveProperty("enabled");
    }
    expect(list.text).not.toContain("billing.example.com");
  });

  it("gets one enabled target; disabled and unknown ones are 404", async () => {
    const got = await t.call("GET", "/v1/integration/targets/billing-api", org.member);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ targetKey: "billing-api", displayName: "Billing API" });
    expect(got.body.connectionMethods.map((m: { id: string }) => m.id)).toEqual(
      t.deps.registry.get("http-api")?.connectionMethods.map((m) => m.id),
    );
    for (const key of ["crm-api", "http-api", "does-not-exist"]) {
      const r = await t.call("GET", `/v1/integration/targets/${key}`, org.admin);
      expect(r.status).toBe(404);
      expect(r.body.error.code).toBe("not_found");
    }
  });

  it("needs an organization token", async () => {
    expect((await t.call("GET", "/v1/integration/targets", undefined)).status).toBe(401);
    expect((await t.call("GET", "/v1/integration/targets", t.operatorToken)).status).toBe(403);
    expect((await t.call("GET", "/v1/integration/targets/openai", t.operatorToken)).status).toBe(
      403,
    );
  });

  it("documents its routes in the OpenAPI document", async () => {
    const doc = await t.call("GET", "/openapi.json", undefined);
    const paths = Object.keys(doc.body.paths);
    for (const path of [
      "/v1/integration/targets",
      "/v1/integration/targets/{targetKey}",
      "/v1/operator/targets",
      "/v1/operator/targets/{targetKey}",
      "/v1/operator/targets/{targetKey}/enable",
      "/v1/operator/targets/{targetKey}/disable",
      "/v1/operator/targets/{targetKey}/secrets",
    ]) {
      expect(paths).toContain(path);
    }
  });
});

describe("loadTargetForUse", () => {
  it("returns the definition, parsed config (defaults applied) and secrets on demand", async () => {
    const { db } = t.deps.database;
    const openai = await loadTargetForUse(db, t.deps, { targetKey: "openai" });
    expect(openai.definition.variantId).toBe("openai");
    expect(openai.config).toMatchObject({ apiBaseUrl: "https://api.openai.com/v1" });
    expect(openai.view).toMatchObject({ id: openai.row.id, targetKey: "openai" });
    expect(openai.secrets()).toEqual({});

    const billing = await loadTargetForUse(db, t.deps, { targetKey: "billing-api" });
    const byId = await loadTargetForUse(db, t.deps, { id: billing.row.id });
    expect(byId.row.targetKey).toBe("billing-api");
    expect(billing.secrets()).toMatchObject({ webhookSecret: expect.stringMatching(/^whsec_/) });
  });

  it("refuses unknown, disabled and misconfigured targets with codes", async () => {
    const { db } = t.deps.database;
    await expect(loadTargetForUse(db, t.deps, { targetKey: "nope" })).rejects.toMatchObject({
      kind: "not_found",
    });
    await expect(loadTargetForUse(db, t.deps, { targetKey: "crm-api" })).rejects.toMatchObject({
      code: "target_disabled",
    });
    // A stored config that stopped parsing (e.g. after a definition changed) is not usable.
    await db
      .update(integrationTargets)
      .set({ enabled: true })
      .where(eq(integrationTargets.targetKey, "http-api"));
    await expect(loadTargetForUse(db, t.deps, { targetKey: "http-api" })).rejects.toMatchObject({
      code: "target_config_invalid",
    });
    const list = await t.call("GET", "/v1/integration/targets", org.viewer);
    expect(list.body.items.map((i: { targetKey: string }) => i.targetKey)).not.toContain(
      "http-api",
    );
  });
});

describe("operator target detail", () => {
  it("gives the forms of a target's config and secrets on its detail (for the console)", async () => {
    const created = await op("POST", "/v1/operator/targets", {
      targetKey: "forms-api",
      variantId: "http-api",
      enabled: false,
      config: { baseUrl: "https://api.example.com/v1" },
    });
    expect(created.status).toBe(201);
    const detail = await op("GET", "/v1/operator/targets/forms-api");
    expect(detail.status).toBe(200);
    expect(Object.keys(detail.body.forms.config.properties)).toContain("baseUrl");
    expect(Object.keys(detail.body.forms.secrets.properties)).toContain("webhookSecret");
    expect(detail.body.forms.secrets.properties.webhookSecret["x-keyway-ui"]).toMatchObject({
      widget: "password",
    });
  });
});
