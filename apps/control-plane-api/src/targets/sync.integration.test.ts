import { randomBytes } from "node:crypto";
import { ConfigError, type TargetConfig } from "@keyway/config";
import { auditLog, integrationTargets } from "@keyway/db";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decryptTargetSecrets } from "../credentials/secret-store";
import type { FeedMessage } from "../events/invalidations";
import { createTestApp, type TestApp } from "../testing/test-app";
import { syncTargets } from "./sync";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});

const sync = (configTargets: Record<string, TargetConfig> = {}) =>
  syncTargets(t.deps.database.db, {
    registry: t.deps.registry,
    keyRing: t.deps.keyRing,
    clock: t.deps.clock,
    configTargets,
  });

const target = (
  overrides: Partial<TargetConfig> & Pick<TargetConfig, "variant">,
): TargetConfig => ({
  enabled: true,
  config: {},
  secrets: {},
  ...overrides,
});

async function rowOf(targetKey: string) {
  const [row] = await t.deps.database.db
    .select()
    .from(integrationTargets)
    .where(eq(integrationTargets.targetKey, targetKey));
  return row;
}

async function auditCount() {
  return (await t.deps.database.db.select({ id: auditLog.id }).from(auditLog)).length;
}

/** Resolves with the first matching invalidation published after the call. */
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

const ghesWebhookSecret = `ghes-webhook-${randomBytes(12).toString("hex")}`;

describe("syncTargets", () => {
  it("creates one default target per definition, enabled only when {} is a valid config", async () => {
    const result = await sync();
    expect(result.created.sort()).toEqual(t.deps.registry.list().map((d) => d.variantId));
    expect(result.updated).toEqual([]);

    const openai = await rowOf("openai");
    expect(openai).toMatchObject({
      variantId: "openai",
      familyId: "openai",
      kind: "agent",
      enabled: true,
      source: "registry",
      config: {},
      secretsCiphertext: null,
    });
    expect(await rowOf("http-api")).toMatchObject({ enabled: false, source: "registry" });
    expect(await rowOf("github-enterprise-server")).toMatchObject({ enabled: false });
    expect(await rowOf("github-cloud")).toMatchObject({ enabled: true, kind: "git" });

    const entries = await t.deps.database.db
      .select()
      .from(auditLog)
      .where(eq(auditLog.actor, "system:registry"));
    expect(entries).toHaveLength(t.deps.registry.list().length);
    expect(entries.every((e) => e.action === "target.created")).toBe(true);
  });

  it("is idempotent: a second run changes nothing and writes no audit entry", async () => {
    const before = await auditCount();
    const openaiBefore = await rowOf("openai");
    expect(await sync()).toEqual({ created: [], updated: [] });
    expect(await auditCount()).toBe(before);
    expect(await rowOf("openai")).toEqual(openaiBefore);
  });

  it("never overwrites an existing default (operator changes survive restarts)", async () => {
    const disabled = await t.call(
      "POST",
      "/v1/operator/targets/anthropic/disable",
      t.operatorToken,
    );
    expect(disabled.status).toBe(200);
    await sync();
    expect(await rowOf("anthropic")).toMatchObject({ enabled: false, source: "registry" });
  });

  it("provisions targets from the config file with encrypted secrets, once", async () => {
    const configTargets = {
      "ghes-main": target({
        variant: "github-enterprise-server",
        display_name: "Corp GHES",
        config: { webBaseUrl: "https://ghe.example.com" },
        secrets: { appId: "42", webhookSecret: ghesWebhookSecret },
      }),
    };
    const result = await sync(configTargets);
    expect(result).toEqual({ created: ["ghes-main"], updated: [] });

    const row = await rowOf("ghes-main");
    expect(row).toMatchObject({
      variantId: "github-enterprise-server",
      familyId: "github",
      enabled: true,
      source: "config",
      displayName: "Corp GHES",
      config: { webBaseUrl: "https://ghe.example.com" },
    });
    if (!row) throw new Error("unreachable");
    expect(row.secretsCiphertext).toBeTruthy();
    expect(row.secretsCiphertext).not.toContain(ghesWebhookSecret);
    expect(decryptTargetSecrets(t.deps.keyRing, row.id, row.secretsCiphertext)).toEqual({
      appId: "42",
      webhookSecret: ghesWebhookSecret,
    });
    const [created] = await t.deps.database.db
      .select()
      .from(auditLog)
      .where(eq(auditLog.subjectId, row.id));
    expect(created).toMatchObject({ actor: "system:config", action: "target.created" });
    expect(JSON.stringify(created)).not.toContain(ghesWebhookSecret);

    const before = await auditCount();
    expect(await sync(configTargets)).toEqual({ created: [], updated: [] });
    expect(await auditCount()).toBe(before);
    expect((await rowOf("ghes-main"))?.secretsCiphertext).toBe(row.secretsCiphertext);
  });

  it("updates a provisioned target and publishes invalidations", async () => {
    const row = await rowOf("ghes-main");
    if (!row) throw new Error("ghes-main missing");
    const updated = nextInvalidation((e) => e.type === "target.updated" && e.targetId === row.id);
    const result = await sync({
      "ghes-main": target({
        variant: "github-enterprise-server",
        config: { webBaseUrl: "https://ghe2.example.com" },
      }),
    });
    expect(result).toEqual({ created: [], updated: ["ghes-main"] });
    await updated;
    const after = await rowOf("ghes-main");
    expect(after?.config).toEqual({ webBaseUrl: "https://ghe2.example.com" });
    // Absent display_name and empty secrets leave what is stored.
    expect(after?.displayName).toBe("Corp GHES");
    expect(decryptTargetSecrets(t.deps.keyRing, row.id, after?.secretsCiphertext ?? null)).toEqual({
      appId: "42",
      webhookSecret: ghesWebhookSecret,
    });
    const [entry] = await t.deps.database.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.action, "target.updated"), eq(auditLog.subjectId, row.id)));
    expect(entry).toMatchObject({ actor: "system:config", details: { changed: ["config"] } });

    const disabled = nextInvalidation((e) => e.type === "target.disabled" && e.targetId === row.id);
    await sync({
      "ghes-main": target({
        variant: "github-enterprise-server",
        enabled: false,
        config: { webBaseUrl: "https://ghe2.example.com" },
        secrets: { appId: "7" },
      }),
    });
    await disabled;
    const final = await rowOf("ghes-main");
    expect(final?.enabled).toBe(false);
    expect(decryptTargetSecrets(t.deps.keyRing, row.id, final?.secretsCiphertext ?? null)).toEqual({
      appId: "7",
    });
  });

  it("takes over a registry default named in the config file", async () => {
    const result = await sync({
      "http-api": target({ variant: "http-api", config: { baseUrl: "https://api.example.com" } }),
    });
    expect(result).toEqual({ created: [], updated: ["http-api"] });
    expect(await rowOf("http-api")).toMatchObject({
      enabled: true,
      source: "config",
      config: { baseUrl: "https://api.example.com" },
    });
  });

  it("fails with a ConfigError naming the key, writing nothing, for invalid entries", async () => {
    const before = await auditCount();
    const secret = `not-a-whsec-${randomBytes(8).toString("hex")}`;
    const error = await sync({
      "bad-config": target({ variant: "github-enterprise-server", config: { webBaseUrl: 5 } }),
      "bad-secret": target({
        variant: "http-api",
        config: { baseUrl: "https://x.example.com" },
        secrets: { webhookSecret: secret },
      }),
      "bad-variant": target({ variant: "no-such-thing" }),
      fine: target({ variant: "openai" }),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).toContain("targets.bad-config.config.webBaseUrl");
    expect(message).toContain("targets.bad-secret.secrets.webhookSecret");
    expect(message).toContain("targets.bad-variant.variant");
    expect(message).toContain('unknown variant "no-such-thing"');
    expect(message).not.toContain(secret);
    expect(await rowOf("fine")).toBeUndefined();
    expect(await auditCount()).toBe(before);
  });

  it("refuses to change the variant of an existing target", async () => {
    const error = await sync({ openai: target({ variant: "anthropic" }) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain("targets.openai.variant");
    expect(await rowOf("openai")).toMatchObject({ variantId: "openai", source: "registry" });
  });

  it("is safe when several replicas sync at once", async () => {
    const configTargets = {
      "openai-eu": target({
        variant: "openai",
        config: { apiBaseUrl: "https://eu.api.openai.com/v1" },
      }),
    };
    const before = await auditCount();
    const results = await Promise.all([
      sync(configTargets),
      sync(configTargets),
      sync(configTargets),
    ]);
    expect(results.flatMap((r) => r.created)).toEqual(["openai-eu"]);
    expect(results.flatMap((r) => r.updated)).toEqual([]);
    expect(await auditCount()).toBe(before + 1);
  });
});
