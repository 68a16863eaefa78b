import { generateKeyPairSync } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { syncTargets } from "./targets/sync";
import { createTestApp, type TestApp } from "./testing/test-app";

/**
 * SPEC §6.5: secrets never appear in API responses, logs, errors, plans or sandbox material.
 * One scenario drives every resource with real secrets — target secrets written by the operator,
 * connection keys created and rotated, failing requests that echo input — and then scans every
 * response body and every log line for every secret value. The internal credential-resolution
 * answer is the one place a secret is meant to travel (to a gateway), and is checked to be only
 * there.
 */
let t: TestApp;
const bodies: string[] = [];

const appKey = generateKeyPairSync("rsa", { modulusLength: 2048 })
  .privateKey.export({ type: "pkcs8", format: "pem" })
  .toString();
const SECRETS = {
  githubWebhook: "gh-webhook-secret-5f1e0b7a",
  githubClientSecret: "gh-client-secret-9d8c7b6a",
  appPrivateKey: appKey,
  slackSigning: "slack-signing-secret-aa11bb22",
  openaiKey: "sk-proj-scan-0001-abcdef",
  openaiRotated: "sk-proj-scan-0002-fedcba",
  anthropicKey: "sk-ant-scan-0003-112233",
  acmeKey: "acme-scan-key-0004-445566",
  acmeWebhook: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
};

async function call(method: string, path: string, token: string | undefined, body?: unknown) {
  const response = await t.call(method, path, token, body);
  bodies.push(response.text, JSON.stringify([...response.headers]));
  return response;
}

beforeAll(async () => {
  t = await createTestApp();
  await syncTargets(t.deps.database.db, {
    registry: t.deps.registry,
    keyRing: t.deps.keyRing,
    clock: t.deps.clock,
    configTargets: {},
  });
});

afterAll(async () => {
  await t.close();
});

describe("secret scan over a full scenario", () => {
  it("never returns or logs a secret outside the gateway's credential channel", async () => {
    const op = t.operatorToken;
    // Operator: target secrets, a new generic target with a webhook secret, bad input that echoes.
    expect(
      (
        await call("PUT", "/v1/operator/targets/github-cloud/secrets", op, {
          secrets: {
            webhookSecret: SECRETS.githubWebhook,
            clientSecret: SECRETS.githubClientSecret,
            appPrivateKeyPem: SECRETS.appPrivateKey,
            appId: "123",
          },
        })
      ).status,
    ).toBe(200);
    await call("PUT", "/v1/operator/targets/slack/secrets", op, {
      secrets: { signingSecret: SECRETS.slackSigning },
    });
    expect(
      (
        await call("POST", "/v1/operator/targets", op, {
          targetKey: "acme",
          variantId: "http-api",
          config: {
            baseUrl: "https://api.acme.example/v1",
            webhook: { scheme: "standard-webhooks" },
          },
          secrets: { webhookSecret: SECRETS.acmeWebhook },
        })
      ).status,
    ).toBe(201);
    await call("PUT", "/v1/operator/targets/acme/secrets", op, {
      secrets: { webhookSecret: 42, other: SECRETS.acmeWebhook },
    });
    await call("GET", "/v1/operator/targets", op);
    await call("GET", "/v1/operator/targets/github-cloud", op);

    // Organization: connections with keys, a rotation, bad input carrying a key, listings.
    const org = await t.createOrganization("Scan");
    const openai = await call("POST", "/v1/integration/connections", org.member, {
      targetKey: "openai",
      methodId: "api-key",
      displayName: "OpenAI",
      secrets: { apiKey: SECRETS.openaiKey },
    });
    expect(openai.status).toBe(201);
    await call("POST", `/v1/integration/connections/${openai.body.id}/secret`, org.member, {
      secrets: { apiKey: SECRETS.openaiRotated },
    });
    await call("POST", "/v1/integration/connections", org.member, {
      targetKey: "anthropic",
      methodId: "api-key",
      displayName: "Claude",
      secrets: { apiKey: SECRETS.anthropicKey },
    });
    const acme = await call("POST", "/v1/integration/connections", org.member, {
      targetKey: "acme",
      methodId: "api-key",
      displayName: "Acme",
      secrets: { apiKey: SECRETS.acmeKey },
    });
    expect(acme.status).toBe(201);
    await call("POST", "/v1/integration/connections", org.member, {
      targetKey: "openai",
      methodId: "api-key",
      displayName: "bad",
      secrets: { apiKey: SECRETS.openaiKey, extra: SECRETS.anthropicKey },
    });
    await call("GET", "/v1/integration/connections", org.viewer);
    await call("GET", `/v1/integration/connections/${openai.body.id}`, org.viewer);

    // Profile, plan, diff, session.
    const profile = await call("POST", "/v1/sandbox-profiles", org.member, { name: "scan" });
    await call("POST", `/v1/sandbox-profiles/${profile.body.id}/versions`, org.member, {
      bindings: [
        { connectionId: openai.body.id, kind: "agent", config: { model: "gpt-6.2-sol" } },
        { connectionId: acme.body.id, kind: "connector", config: {} },
      ],
    });
    await call("POST", `/v1/sandbox-profiles/${profile.body.id}/versions`, org.member, {
      bindings: [{ connectionId: openai.body.id, kind: "agent", config: { model: "gpt-6.2-sol" } }],
    });
    const plan = await call(
      "GET",
      `/v1/sandbox-profiles/${profile.body.id}/versions/1/plan`,
      org.viewer,
    );
    expect(plan.status).toBe(200);
    await call(
      "GET",
      `/v1/sandbox-profiles/${profile.body.id}/versions/2/diff?against=1`,
      org.viewer,
    );
    const session = await call("POST", "/v1/sandbox-sessions", org.member, {
      profileId: profile.body.id,
      version: 1,
    });
    expect(session.status).toBe(201);
    await call("GET", `/v1/sandbox-sessions/${session.body.id}`, org.viewer);
    // Webhook subscriptions: signing secrets are shown once, at creation and at rotation.
    const subscribed = await call("POST", "/v1/webhook-subscriptions", org.member, {
      url: "https://93.184.215.14/hooks",
      eventTypes: ["*"],
    });
    expect(subscribed.status).toBe(201);
    const rotated = await call(
      "POST",
      `/v1/webhook-subscriptions/${subscribed.body.id}/rotate-secret`,
      org.member,
    );
    expect(rotated.status).toBe(200);
    const shownOnce = [subscribed, rotated].map((answer) => ({
      secret: answer.body.secret as string,
      text: answer.text,
    }));
    await call("PATCH", `/v1/webhook-subscriptions/${subscribed.body.id}`, org.member, {
      description: "scanned",
    });
    await call("GET", "/v1/webhook-subscriptions", org.viewer);
    await call("GET", `/v1/webhook-subscriptions/${subscribed.body.id}`, org.viewer);
    await call("POST", "/v1/webhook-subscriptions", org.member, {
      url: "http://127.0.0.1/hooks",
      eventTypes: ["*"],
      secret: shownOnce[0]?.secret,
    });
    await call("GET", "/v1/webhook-events", org.viewer);
    await call("GET", "/v1/operator/webhook-events", op);

    await call("GET", "/v1/audit?limit=200", org.viewer);
    await call("GET", "/v1/audit/verify", op);

    // The gateway channel: the one answer that carries a secret, and only the route's own.
    const route = plan.body.plan.routes.find((r: { match: { hosts: string[] } }) =>
      r.match.hosts.includes("api.openai.com"),
    );
    const resolved = await t.call(
      "POST",
      "/internal/v1/credentials/resolve",
      await t.gatewayAssertion(),
      {
        sessionId: session.body.id,
        routeId: route.id,
      },
    );
    expect(resolved.status).toBe(200);
    expect(resolved.body.value).toBe(SECRETS.openaiRotated);
    for (const [name, secret] of Object.entries(SECRETS)) {
      if (name !== "openaiRotated") expect(resolved.text).not.toContain(secret);
    }

    // The logger's redaction (REDACTED_PATHS, a second line of defence): a careless call naming
    // secrets by the fields, nested objects and header maps they travel in writes none of them.
    for (const secret of Object.values(SECRETS)) {
      t.deps.logger.error("careless caller", {
        authorization: `Bearer ${secret}`,
        token: secret,
        clientSecret: secret,
        privateKey: secret,
        credentials: { apiKey: secret },
        connection: { secret, credential: secret, password: secret },
        headers: { authorization: secret, cookie: secret, "x-api-key": secret },
        request: { headers: { "proxy-authorization": secret, "set-cookie": secret } },
        oauth: { accessToken: secret, refreshToken: secret, value: secret },
      });
    }
    // The Prometheus exposition is read by whoever scrapes it: no secret there either.
    const metrics = await t.app.request("/metrics");
    expect(metrics.status).toBe(200);
    const haystacks = [...bodies, ...t.logger.lines, await metrics.text()];
    expect(haystacks.length).toBeGreaterThan(30);
    for (const [name, secret] of Object.entries(SECRETS)) {
      // PEM bodies are long; any 40-character slice of the key body would be a leak.
      const needle = name === "appPrivateKey" ? (secret.split("\n")[1] ?? secret) : secret;
      for (const text of haystacks) {
        if (text.includes(needle))
          throw new Error(`secret ${name} leaked into: ${text.slice(0, 200)}`);
      }
    }
    // Session tokens are credentials too: shown once at start, never logged.
    for (const line of t.logger.lines) expect(line).not.toContain(session.body.token);
    // Subscription signing secrets: in the one answer that hands each out, nowhere else (the
    // refused request above carried the first one: its answer must not echo it).
    for (const { secret, text } of shownOnce) {
      expect(secret).toMatch(/^whsec_/);
      const holders = haystacks.filter((haystack) => haystack.includes(secret));
      expect(holders).toEqual([text]);
    }
  });
});
