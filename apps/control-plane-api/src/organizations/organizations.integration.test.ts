import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, type TestApp } from "../testing/test-app";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});

describe("organizations and API tokens", () => {
  it("lets an operator create an organization with a first admin token shown once", async () => {
    const created = await t.call("POST", "/v1/operator/organizations", t.operatorToken, {
      name: "Acme",
    });
    expect(created.status).toBe(201);
    expect(created.body.organization).toMatchObject({ name: "Acme" });
    expect(created.body.organization.id).toMatch(/^org_/);
    expect(created.body.adminToken.token).toMatch(/^kw_org_/);
    const me = await t.call("GET", "/v1/organization", created.body.adminToken.token);
    expect(me.status).toBe(200);
    expect(me.body.id).toBe(created.body.organization.id);
    const list = await t.call("GET", "/v1/api-tokens", created.body.adminToken.token);
    expect(list.status).toBe(200);
    expect(list.text).not.toContain(created.body.adminToken.token);
  });

  it("records when a token was last used", async () => {
    const org = await t.createOrganization("Usage");
    await t.call("GET", "/v1/organization", org.viewer);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const tokens = await t.call("GET", "/v1/api-tokens", org.admin);
    const viewer = tokens.body.items.find((i: { role: string }) => i.role === "viewer");
    expect(viewer.lastUsedAt).not.toBeNull();
  });

  it("refuses missing, unknown and wrong-kind tokens with 401 and the same body", async () => {
    const none = await t.call("GET", "/v1/organization", undefined);
    const bad = await t.call(
      "GET",
      "/v1/organization",
      "kw_org_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    );
    const junk = await t.call("GET", "/v1/organization", "not-a-token");
    for (const r of [none, bad, junk]) {
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe("unauthorized");
      expect(r.body.error.requestId).toBeTruthy();
    }
  });

  it("enforces roles: only admins manage tokens; operators cannot use org routes", async () => {
    const org = await t.createOrganization("Roles");
    expect(
      (await t.call("POST", "/v1/api-tokens", org.member, { name: "x", role: "viewer" })).status,
    ).toBe(403);
    expect((await t.call("GET", "/v1/api-tokens", org.viewer)).status).toBe(403);
    expect((await t.call("GET", "/v1/organization", org.viewer)).status).toBe(200);
    expect((await t.call("GET", "/v1/organization", t.operatorToken)).status).toBe(403);
    expect(
      (await t.call("POST", "/v1/operator/organizations", org.admin, { name: "x" })).status,
    ).toBe(403);
  });

  it("revokes a token at once and hides other organizations' tokens behind 404", async () => {
    const a = await t.createOrganization("A");
    const b = await t.createOrganization("B");
    const created = await t.call("POST", "/v1/api-tokens", a.admin, {
      name: "temp",
      role: "member",
    });
    expect((await t.call("DELETE", `/v1/api-tokens/${created.body.id}`, b.admin)).status).toBe(404);
    expect((await t.call("GET", "/v1/organization", created.body.token)).status).toBe(200);
    expect((await t.call("DELETE", `/v1/api-tokens/${created.body.id}`, a.admin)).status).toBe(204);
    expect((await t.call("GET", "/v1/organization", created.body.token)).status).toBe(401);
  });

  it("answers bad input with 400 field issues, 415 and 413", async () => {
    const org = await t.createOrganization("Input");
    const unknownField = await t.call("POST", "/v1/api-tokens", org.admin, {
      name: "x",
      role: "admin",
      extra: 1,
    });
    expect(unknownField.status).toBe(400);
    expect(unknownField.body.error.code).toBe("invalid_request");
    const wrongType = await t.call("POST", "/v1/api-tokens", org.admin, { name: 5, role: "owner" });
    expect(wrongType.status).toBe(400);
    expect(
      wrongType.body.error.details.issues.map((i: { field: string }) => i.field).sort(),
    ).toEqual(["name", "role"]);
    const malformed = await t.call("POST", "/v1/api-tokens", org.admin, "{not json");
    expect(malformed.status).toBe(400);
    const text = await t.call("POST", "/v1/api-tokens", org.admin, "name=x", {
      "content-type": "text/plain",
    });
    expect(text.status).toBe(415);
    const huge = await t.call("POST", "/v1/api-tokens", org.admin, {
      name: "x".repeat(1_100_000),
      role: "admin",
    });
    expect(huge.status).toBe(413);
  });

  it("serves an OpenAPI document generated from the schemas", async () => {
    const doc = await t.call("GET", "/openapi.json", undefined);
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toBe("3.1.0");
    expect(Object.keys(doc.body.paths)).toContain("/v1/api-tokens");
  });
});
