import { auditLog, compiledPlans, profileVersions } from "@keyway/db";
import { canonicalDigest } from "@keyway/integrations-core";
import { and, asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeCredentialVersion } from "../credentials/secret-store";
import { createTestApp, type TestApp } from "../testing/test-app";
import { loadPlan } from "./service";
import {
  countAll,
  HTTP_API_CONFIG,
  httpApiBinding,
  insertConnection,
  insertTarget,
  openaiBinding,
  setTargetEnabled,
} from "./test-fixtures";

let t: TestApp;
let org: Awaited<ReturnType<TestApp["createOrganization"]>>;
let other: Awaited<ReturnType<TestApp["createOrganization"]>>;
let openaiTarget: string;
let httpTarget: string;
let openaiConn: string;
let httpConn: string;
let httpConn2: string;
let otherOrgConn: string;

const OPENAI_SECRET = "sk-proj-SECRET-openai-5f1c7a9e2b";
const HTTP_SECRET = "SECRET-http-api-key-93ad01";

beforeAll(async () => {
  t = await createTestApp();
  org = await t.createOrganization("Profiles");
  other = await t.createOrganization("Other");
  openaiTarget = await insertTarget(t, "openai");
  httpTarget = await insertTarget(t, "http-api", { config: HTTP_API_CONFIG });
  openaiConn = await insertConnection(t, org.id, openaiTarget);
  httpConn = await insertConnection(t, org.id, httpTarget);
  httpConn2 = await insertConnection(t, org.id, httpTarget);
  otherOrgConn = await insertConnection(t, other.id, openaiTarget);
  const now = t.clock.now();
  await t.deps.database.db.transaction(async (tx) => {
    for (const [connectionId, secret] of [
      [openaiConn, OPENAI_SECRET],
      [httpConn, HTTP_SECRET],
    ] as const) {
      await writeCredentialVersion(tx, t.deps.keyRing, {
        connectionId,
        organizationId: org.id,
        credential: { kind: "secret-fields", fields: { apiKey: secret } },
        now,
      });
    }
  });
});
afterAll(async () => {
  await t.close();
});

async function newProfile(name: string, token = org.member) {
  const created = await t.call("POST", "/v1/sandbox-profiles", token, { name });
  expect(created.status).toBe(201);
  return created.body.id as string;
}

function expectNoSecrets(text: string) {
  expect(text).not.toContain(OPENAI_SECRET);
  expect(text).not.toContain(HTTP_SECRET);
}

describe("sandbox profiles", () => {
  it("creates, lists, reads, renames and deletes profiles with the right roles", async () => {
    const created = await t.call("POST", "/v1/sandbox-profiles", org.member, {
      name: "  coding  ",
      description: "agents that write code",
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: "coding",
      description: "agents that write code",
      latestVersion: 0,
    });
    expect(created.body.id).toMatch(/^prof_/);
    const id = created.body.id;

    expect((await t.call("POST", "/v1/sandbox-profiles", org.viewer, { name: "x" })).status).toBe(
      403,
    );
    const list = await t.call("GET", "/v1/sandbox-profiles", org.viewer);
    expect(list.status).toBe(200);
    expect(list.body.items.map((p: { id: string }) => p.id)).toContain(id);
    expect((await t.call("GET", `/v1/sandbox-profiles/${id}`, org.viewer)).body.name).toBe(
      "coding",
    );

    expect(
      (await t.call("PATCH", `/v1/sandbox-profiles/${id}`, org.viewer, { name: "y" })).status,
    ).toBe(403);
    const renamed = await t.call("PATCH", `/v1/sandbox-profiles/${id}`, org.member, {
      name: "coding-2",
      description: null,
    });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({ name: "coding-2", description: null });

    expect((await t.call("DELETE", `/v1/sandbox-profiles/${id}`, org.member)).status).toBe(403);
    expect((await t.call("DELETE", `/v1/sandbox-profiles/${id}`, org.admin)).status).toBe(204);
    expect((await t.call("GET", `/v1/sandbox-profiles/${id}`, org.admin)).status).toBe(404);

    const actions = (
      await t.deps.database.db
        .select({ action: auditLog.action })
        .from(auditLog)
        .where(eq(auditLog.subjectId, id))
        .orderBy(asc(auditLog.seq))
    ).map((r) => r.action);
    expect(actions).toEqual(["profile.created", "profile.updated", "profile.deleted"]);
  });

  it("answers 409 for a duplicate name in the organization only", async () => {
    await newProfile("dup");
    const again = await t.call("POST", "/v1/sandbox-profiles", org.admin, { name: "dup" });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("profile_name_taken");
    expect(
      (await t.call("POST", "/v1/sandbox-profiles", other.member, { name: "dup" })).status,
    ).toBe(201);
    const second = await newProfile("dup-2");
    const rename = await t.call("PATCH", `/v1/sandbox-profiles/${second}`, org.member, {
      name: "dup",
    });
    expect(rename.status).toBe(409);
    expect(rename.body.error.code).toBe("profile_name_taken");
  });

  it("answers 400 with field issues for bad bodies and parameters", async () => {
    const unknown = await t.call("POST", "/v1/sandbox-profiles", org.member, {
      name: "x",
      owner: "me",
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.code).toBe("invalid_request");
    const empty = await t.call("POST", "/v1/sandbox-profiles", org.member, { name: "  " });
    expect(empty.status).toBe(400);
    expect(empty.body.error.details.issues[0].field).toBe("name");

    const id = await newProfile("bad-input");
    expect((await t.call("PATCH", `/v1/sandbox-profiles/${id}`, org.member, {})).status).toBe(400);
    const badBinding = await t.call("POST", `/v1/sandbox-profiles/${id}/versions`, org.member, {
      bindings: [{ connectionId: openaiConn, kind: "robot", config: {}, extra: true }],
      egressPolicy: { default: "maybe", allowHosts: ["https://x.test/path"] },
    });
    expect(badBinding.status).toBe(400);
    const fields = badBinding.body.error.details.issues.map((i: { field: string }) => i.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        "bindings.0",
        "bindings.0.kind",
        "egressPolicy.default",
        "egressPolicy.allowHosts.0",
      ]),
    );
    expect(
      (await t.call("POST", `/v1/sandbox-profiles/${id}/versions`, org.member, {})).status,
    ).toBe(400);
    expect(
      (await t.call("GET", `/v1/sandbox-profiles/${id}/versions/abc`, org.member)).status,
    ).toBe(400);
    expect(
      (await t.call("GET", `/v1/sandbox-profiles/${id}/versions/1/diff`, org.member)).status,
    ).toBe(400);
  });
});

describe("profile versions", () => {
  it("creates an immutable version whose bindings, plan and digest are stored together", async () => {
    const id = await newProfile("versions");
    const before = await countAll(t);
    const created = await t.call("POST", `/v1/sandbox-profiles/${id}/versions`, org.member, {
      bindings: [openaiBinding(openaiConn), httpApiBinding(httpConn, { methods: ["GET"] })],
      egressPolicy: { default: "deny", allowHosts: ["Registry.NPMJS.org"] },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      profileId: id,
      version: 1,
      bindingCount: 2,
      egressPolicy: { default: "deny", allowHosts: ["registry.npmjs.org"] },
    });
    expect(created.body.planDigest).toMatch(/^[0-9a-f]{64}$/);
    const bindings = created.body.bindings;
    expect(bindings.map((b: { connectionId: string }) => b.connectionId)).toEqual([
      openaiConn,
      httpConn,
    ]);
    for (const b of bindings) expect(b.id).toMatch(/^bind_/);
    const after = await countAll(t);
    expect(after.profile_versions).toBe(before.profile_versions! + 1);
    expect(after.profile_bindings).toBe(before.profile_bindings! + 2);
    expect(after.compiled_plans).toBe(before.compiled_plans! + 1);
    expect(after.audit_log).toBe(before.audit_log! + 1);

    const [stored] = await t.deps.database.db
      .select()
      .from(compiledPlans)
      .where(eq(compiledPlans.digest, created.body.planDigest));
    expect(stored).toBeDefined();
    expect(canonicalDigest(stored!.plan)).toBe(created.body.planDigest);
    expectNoSecrets(JSON.stringify(stored!.plan));
    expectNoSecrets(created.text);

    const read = await t.call("GET", `/v1/sandbox-profiles/${id}/versions/1`, org.viewer);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(created.body);
    expect((await t.call("GET", `/v1/sandbox-profiles/${id}`, org.viewer)).body.latestVersion).toBe(
      1,
    );
    const [audit] = await t.deps.database.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.subjectId, id), eq(auditLog.action, "profile.version_created")));
    expect(audit?.details).toMatchObject({ version: 1, planDigest: created.body.planDigest });
  });

  it("never changes a version: no update route, and v2 leaves v1 and its digest alone", async () => {
    const id = await newProfile("immutable");
    const v1 = await t.call("POST", `/v1/sandbox-profiles/${id}/versions`, org.member, {
      bindings: [openaiBinding(openaiConn)],
    });
    expect(v1.status).toBe(201);
    for (const method of ["PUT", "PATCH", "DELETE", "POST"]) {
      const r = await t.call(method, `/v1/sandbox-profiles/${id}/versions/1`, org.admin, {
        bindings: [],
      });
      expect(r.status).toBe(404);
    }
    const v2 = await t.call("POST", `/v1/sandbox-profiles/${id}/versions`, org.member, {
      bindings: [httpApiBinding(httpConn)],
    });
    expect(v2.status).toBe(201);
    expect(v2.body.version).toBe(2);
    expect(v2.body.planDigest).not.toBe(v1.body.planDigest);
    const again = await t.call("GET", `/v1/sandbox-profiles/${id}/versions/1`, org.viewer);
    expect(again.body).toEqual(v1.body);
    const list = await t.call("GET", `/v1/sandbox-profiles/${id}/versions`, org.viewer);
    expect(list.status).toBe(200);
    expect(list.body.items.map((v: { version: number; planDigest: string }) => v.version)).toEqual([
      1, 2,
    ]);
    expect(list.body.items[0].planDigest).toBe(v1.body.planDigest);
    expect(list.body.items[0].bindingCount).toBe(1);
  });

  it("allocates version numbers safely under concurrent writes", async () => {
    const id = await newProfile("concurrent");
    const results = await Promise.all(
      Array.from({ length: 5 }, () =>
        t.call("POST", `/v1/sandbox-profiles/${id}/versions`, org.member, {
          bindings: [openaiBinding(openaiConn)],
        }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual([201, 201, 201, 201, 201]);
    expect(results.map((r) => r.body.version).sort()).toEqual([1, 2, 3, 4, 5]);
    expect((await t.call("GET", `/v1/sandbox-profiles/${id}`, org.viewer)).body.latestVersion).toBe(
      5,
    );
  });

  it("accepts a version without bindings (egress policy only)", async () => {
    const id = await newProfile("empty");
    const created = await t.call("POST", `/v1/sandbox-profiles/${id}/versions`, org.member, {
      bindings: [],
      egressPolicy: { default: "allow", allowHosts: [] },
    });
    expect(created.status).toBe(201);
    const plan = await t.call("GET", `/v1/sandbox-profiles/${id}/versions/1/plan`, org.viewer);
    expect(plan.body.plan.routes).toEqual([]);
    expect(plan.body.plan.egressPolicy).toEqual({ default: "allow", allowHosts: [] });
  });
});

describe("write-time validation (422, nothing written)", () => {
  let profileId: string;
  beforeAll(async () => {
    profileId = await newProfile("validation");
  });

  async function refused(bindings: unknown[]) {
    const before = await countAll(t);
    const response = await t.call(
      "POST",
      `/v1/sandbox-profiles/${profileId}/versions`,
      org.member,
      { bindings },
    );
    expect(response.status).toBe(422);
    expect(await countAll(t)).toEqual(before);
    expectNoSecrets(response.text);
    // Binding ids that were never stored must not leak into what the caller reads.
    expect(response.text).not.toMatch(/bind_[0-9A-Z]{26}/);
    return response;
  }

  it("refuses another organization's connection exactly like a nonexistent one", async () => {
    const foreign = await refused([openaiBinding(otherOrgConn)]);
    const missing = await refused([openaiBinding("conn_01JAAAAAAAAAAAAAAAAAAAAAAA")]);
    expect(foreign.body.error.code).toBe("connection_not_found");
    const strip = (r: typeof foreign, id: string) =>
      JSON.stringify({ ...r.body.error, requestId: undefined }).replaceAll(id, "<id>");
    expect(strip(foreign, otherOrgConn)).toBe(strip(missing, "conn_01JAAAAAAAAAAAAAAAAAAAAAAA"));
    expect(foreign.body.error.details.issues).toEqual([
      expect.objectContaining({ field: "bindings.0.connectionId", code: "connection_not_found" }),
    ]);
  });

  it("refuses a disabled target and an inactive connection", async () => {
    const disabledTarget = await insertTarget(t, "openai", { enabled: false });
    const onDisabled = await insertConnection(t, org.id, disabledTarget);
    const disabled = await refused([httpApiBinding(httpConn), openaiBinding(onDisabled)]);
    expect(disabled.body.error.code).toBe("target_disabled");
    expect(disabled.body.error.details.errors[0].bindings).toEqual(["bindings.1"]);
    expect(disabled.body.error.details.issues[0].field).toBe("bindings.1.connectionId");

    const broken = await insertConnection(t, org.id, openaiTarget, { status: "error" });
    const inactive = await refused([openaiBinding(broken)]);
    expect(inactive.body.error.code).toBe("connection_not_active");
  });

  it("refuses conflicting bindings with route_conflict naming both", async () => {
    const response = await refused([
      httpApiBinding(httpConn),
      openaiBinding(openaiConn),
      httpApiBinding(httpConn2),
    ]);
    expect(response.body.error.code).toBe("route_conflict");
    const [error] = response.body.error.details.errors;
    expect(error.bindings).toEqual(["bindings.0", "bindings.2"]);
    expect(error.message).toContain("bindings.0");
    expect(error.message).toContain("bindings.2");
    expect(
      response.body.error.details.issues.map((i: { field: string }) => i.field).sort(),
    ).toEqual(["bindings.0", "bindings.2"]);
  });

  it("reports binding config issues under bindings.N.config", async () => {
    const shape = await refused([
      httpApiBinding(httpConn),
      openaiBinding(openaiConn, { model: 5 }),
    ]);
    expect(shape.body.error.code).toBe("invalid_binding_config");
    expect(shape.body.error.details.issues).toEqual([
      expect.objectContaining({ field: "bindings.1.config.model", code: "invalid_type" }),
    ]);

    const rule = await refused([openaiBinding(openaiConn, { model: "gpt-4-unknown" })]);
    expect(rule.body.error.code).toBe("binding_validation_failed");
    expect(rule.body.error.details.issues).toEqual([
      expect.objectContaining({ field: "bindings.0.config.model", code: "openai.unknown_model" }),
    ]);

    const kind = await refused([{ ...openaiBinding(openaiConn), kind: "connector" }]);
    expect(kind.body.error.code).toBe("kind_mismatch");
    expect(kind.body.error.details.issues[0].field).toBe("bindings.0.kind");
  });
});

describe("compile, plan and diff", () => {
  it("compiles to the same digest every time and caches the plan by digest", async () => {
    const id = await newProfile("compile");
    const created = await t.call("POST", `/v1/sandbox-profiles/${id}/versions`, org.member, {
      bindings: [openaiBinding(openaiConn), httpApiBinding(httpConn)],
    });
    const first = await t.call("GET", `/v1/sandbox-profiles/${id}/versions/1/plan`, org.viewer);
    expect(first.status).toBe(200);
    const plansBefore = (await countAll(t)).compiled_plans;
    const second = await t.call("GET", `/v1/sandbox-profiles/${id}/versions/1/plan`, org.viewer);
    expect(second.status).toBe(200);
    expect(second.body.digest).toBe(first.body.digest);
    expect(second.text).toBe(first.text);
    expect(first.body.digest).toBe(created.body.planDigest);
    expect((await countAll(t)).compiled_plans).toBe(plansBefore);
    expect(canonicalDigest(first.body.plan)).toBe(first.body.digest);
    expect(first.body.plan.profileVersionId).toBe(created.body.id);
    expect(first.body.plan.routes.map((r: { bindingId: string }) => r.bindingId)).toEqual(
      expect.arrayContaining(created.body.bindings.map((b: { id: string }) => b.id)),
    );
    expectNoSecrets(first.text);

    const loaded = await loadPlan(t.deps.database.db, first.body.digest);
    expect(loaded).toEqual(first.body.plan);
    expect(await loadPlan(t.deps.database.db, "0".repeat(64))).toBeUndefined();
  });

  it("recompiles from current state: a disabled target makes the plan a 422", async () => {
    const target = await insertTarget(t, "http-api", {
      config: { baseUrl: "https://disable-me.example.test" },
    });
    const connection = await insertConnection(t, org.id, target);
    const id = await newProfile("recompile");
    const created = await t.call("POST", `/v1/sandbox-profiles/${id}/versions`, org.member, {
      bindings: [openaiBinding(openaiConn), httpApiBinding(connection)],
    });
    expect(created.status).toBe(201);
    await setTargetEnabled(t, target, false);
    try {
      const plan = await t.call("GET", `/v1/sandbox-profiles/${id}/versions/1/plan`, org.viewer);
      expect(plan.status).toBe(422);
      expect(plan.body.error.code).toBe("target_disabled");
      const [error] = plan.body.error.details.errors;
      expect(error.bindings).toEqual(["bindings.1"]);
      expect(error.bindingIds).toEqual([created.body.bindings[1].id]);
      const [version] = await t.deps.database.db
        .select()
        .from(profileVersions)
        .where(eq(profileVersions.id, created.body.id));
      expect(version?.planDigest).toBe(created.body.planDigest);
    } finally {
      await setTargetEnabled(t, target, true);
    }
    const back = await t.call("GET", `/v1/sandbox-profiles/${id}/versions/1/plan`, org.viewer);
    expect(back.body.digest).toBe(created.body.planDigest);
  });

  it("diffs two versions by capability", async () => {
    const id = await newProfile("diff");
    await t.call("POST", `/v1/sandbox-profiles/${id}/versions`, org.member, {
      bindings: [openaiBinding(openaiConn)],
    });
    await t.call("POST", `/v1/sandbox-profiles/${id}/versions`, org.member, {
      bindings: [openaiBinding(openaiConn), httpApiBinding(httpConn, { methods: ["GET"] })],
      egressPolicy: { default: "deny", allowHosts: [] },
    });
    const diff = await t.call(
      "GET",
      `/v1/sandbox-profiles/${id}/versions/2/diff?against=1`,
      org.viewer,
    );
    expect(diff.status).toBe(200);
    expect(diff.body.from.version).toBe(1);
    expect(diff.body.to.version).toBe(2);
    expect(diff.body.diff.identical).toBe(false);
    expect(diff.body.diff.capabilities.added).toEqual([
      {
        host: "api.example.test",
        methods: ["GET"],
        pathPrefix: "/v1",
        connectionId: httpConn,
        auth: "bearer",
      },
    ]);
    expect(diff.body.diff.capabilities.removed).toEqual([]);
    expect(diff.body.diff.egressPolicyChanged).toBe(true);

    const back = await t.call(
      "GET",
      `/v1/sandbox-profiles/${id}/versions/1/diff?against=2`,
      org.viewer,
    );
    expect(back.body.diff.capabilities.removed).toEqual(diff.body.diff.capabilities.added);
    const same = await t.call(
      "GET",
      `/v1/sandbox-profiles/${id}/versions/1/diff?against=1`,
      org.viewer,
    );
    expect(same.body.diff.identical).toBe(true);
    expect(
      (await t.call("GET", `/v1/sandbox-profiles/${id}/versions/1/diff?against=9`, org.viewer))
        .status,
    ).toBe(404);
  });
});

describe("tenant isolation", () => {
  it("answers 404 to another organization for every profile route", async () => {
    const id = await newProfile("private");
    await t.call("POST", `/v1/sandbox-profiles/${id}/versions`, org.member, {
      bindings: [openaiBinding(openaiConn)],
    });
    const base = `/v1/sandbox-profiles/${id}`;
    const attempts: [string, string, unknown?][] = [
      ["GET", base],
      ["PATCH", base, { name: "stolen" }],
      ["DELETE", base],
      ["POST", `${base}/versions`, { bindings: [openaiBinding(otherOrgConn)] }],
      ["GET", `${base}/versions`],
      ["GET", `${base}/versions/1`],
      ["GET", `${base}/versions/1/plan`],
      ["GET", `${base}/versions/1/diff?against=1`],
    ];
    for (const [method, path, body] of attempts) {
      const response = await t.call(method, path, other.admin, body);
      expect(response.status, `${method} ${path}`).toBe(404);
      expect(response.body.error.code).toBe("not_found");
    }
    const list = await t.call("GET", "/v1/sandbox-profiles", other.admin);
    expect(list.body.items.map((p: { id: string }) => p.id)).not.toContain(id);
    // Still intact for its owner.
    expect((await t.call("GET", base, org.viewer)).body.name).toBe("private");
    expect((await t.call("GET", `${base}/versions/2`, org.viewer)).status).toBe(404);
  });

  it("documents every route in the OpenAPI document", async () => {
    const doc = await t.call("GET", "/openapi.json", undefined);
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.body.paths)).toEqual(
      expect.arrayContaining([
        "/v1/sandbox-profiles",
        "/v1/sandbox-profiles/{id}",
        "/v1/sandbox-profiles/{id}/versions",
        "/v1/sandbox-profiles/{id}/versions/{v}",
        "/v1/sandbox-profiles/{id}/versions/{v}/plan",
        "/v1/sandbox-profiles/{id}/versions/{v}/diff",
        "/v1/sandbox-sessions",
        "/v1/sandbox-sessions/{id}",
        "/v1/sandbox-sessions/{id}/refresh",
      ]),
    );
  });

  it("keeps secrets out of every log line", () => {
    expectNoSecrets(JSON.stringify(t.logger.lines));
  });
});
