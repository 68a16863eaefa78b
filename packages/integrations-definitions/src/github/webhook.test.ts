import { createHmac } from "node:crypto";
import { normalizeHeaders, type WebhookEvent } from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import { githubWebhook } from "./webhook";

const encoder = new TextEncoder();
const now = new Date("2025-06-01T12:00:00Z");

function request(body: string, headers: Record<string, string>) {
  return { headers: normalizeHeaders(headers), rawBody: encoder.encode(body) };
}

function sign(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

describe("githubWebhook.verify", () => {
  // The test vector GitHub publishes in "Validating webhook deliveries"
  // (docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries).
  const docsSecret = "It's a Secret to Everybody";
  const docsPayload = "Hello, World!";
  const docsSignature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

  it("accepts GitHub's documented example", () => {
    const req = request(docsPayload, { "X-Hub-Signature-256": docsSignature });
    expect(
      githubWebhook.verify(req, {
        targetConfig: {},
        targetSecrets: { webhookSecret: docsSecret },
        now,
      }),
    ).toEqual({
      ok: true,
    });
  });

  it("rejects a tampered body, a wrong secret and a signature without its prefix", () => {
    const tampered = request("Hello, World?", { "X-Hub-Signature-256": docsSignature });
    expect(
      githubWebhook.verify(tampered, {
        targetConfig: {},
        targetSecrets: { webhookSecret: docsSecret },
        now,
      }),
    ).toEqual({
      ok: false,
      reason: "bad_signature",
    });
    const right = request(docsPayload, { "X-Hub-Signature-256": docsSignature });
    expect(
      githubWebhook.verify(right, {
        targetConfig: {},
        targetSecrets: { webhookSecret: "It's a Secret to Nobody" },
        now,
      }),
    ).toEqual({ ok: false, reason: "bad_signature" });
    const bare = request(docsPayload, {
      "X-Hub-Signature-256": docsSignature.slice("sha256=".length),
    });
    expect(
      githubWebhook.verify(bare, {
        targetConfig: {},
        targetSecrets: { webhookSecret: docsSecret },
        now,
      }),
    ).toEqual({
      ok: false,
      reason: "bad_signature",
    });
  });

  it("ignores the legacy SHA-1 header and reports the SHA-256 one missing", () => {
    const req = request(docsPayload, {
      "X-Hub-Signature": "sha1=0000000000000000000000000000000000000000",
    });
    expect(
      githubWebhook.verify(req, {
        targetConfig: {},
        targetSecrets: { webhookSecret: docsSecret },
        now,
      }),
    ).toEqual({
      ok: false,
      reason: "missing_signature",
    });
  });

  it("refuses everything when the target has no webhook secret", () => {
    const req = request(docsPayload, { "X-Hub-Signature-256": docsSignature });
    expect(githubWebhook.verify(req, { targetConfig: {}, targetSecrets: {}, now })).toEqual({
      ok: false,
      reason: "missing_secret",
    });
  });
});

describe("githubWebhook.parse", () => {
  const secret = "hook-secret";

  it("names an event with an action github.<event>.<action> and keeps the installation id", () => {
    const body = JSON.stringify({
      action: "opened",
      installation: { id: 4242 },
      issue: { number: 7 },
    });
    const result = githubWebhook.parse(
      request(body, {
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-Hub-Signature-256": sign(secret, body),
        "Content-Type": "application/json",
      }),
    );
    expect(result).toEqual({
      kind: "event",
      event: {
        deliveryId: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        eventType: "github.issues.opened",
        externalSubjectId: "4242",
        payload: { action: "opened", installation: { id: 4242 }, issue: { number: 7 } },
      },
    });
  });

  it("names an event without an action github.<event>", () => {
    const result = githubWebhook.parse(
      request(JSON.stringify({ ref: "refs/heads/main" }), {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "d-1",
      }),
    );
    expect(result.kind === "event" && result.event.eventType).toBe("github.push");
    expect(result.kind === "event" && result.event.externalSubjectId).toBeUndefined();
  });

  it("reads a form-encoded delivery's payload field", () => {
    const payload = JSON.stringify({ action: "created", installation: { id: 5 } });
    const body = new URLSearchParams({ payload }).toString();
    const result = githubWebhook.parse(
      request(body, {
        "X-GitHub-Event": "installation",
        "X-GitHub-Delivery": "d-2",
        "Content-Type": "application/x-www-form-urlencoded",
      }),
    );
    expect(result.kind === "event" && result.event.eventType).toBe("github.installation.created");
  });

  it("answers ping at once with 200 { ok: true }", () => {
    const result = githubWebhook.parse(
      request(JSON.stringify({ zen: "Keep it logically awesome.", hook_id: 1 }), {
        "X-GitHub-Event": "ping",
        "X-GitHub-Delivery": "d-3",
      }),
    );
    expect(result).toEqual({
      kind: "response",
      response: {
        status: 200,
        headers: { "content-type": "application/json" },
        body: '{"ok":true}',
      },
    });
  });

  it("calls malformed deliveries invalid", () => {
    const headers = { "X-GitHub-Event": "issues", "X-GitHub-Delivery": "d-4" };
    expect(githubWebhook.parse(request("{not json", headers)).kind).toBe("invalid");
    expect(githubWebhook.parse(request("[1,2]", headers)).kind).toBe("invalid");
    expect(githubWebhook.parse(request("{}", { "X-GitHub-Delivery": "d-4" })).kind).toBe("invalid");
    expect(githubWebhook.parse(request("{}", { "X-GitHub-Event": "issues" })).kind).toBe("invalid");
    expect(
      githubWebhook.parse(request("{}", { ...headers, "X-GitHub-Event": "Issues/../x" })).kind,
    ).toBe("invalid");
    const notUtf8 = {
      headers: normalizeHeaders(headers),
      rawBody: new Uint8Array([0x7b, 0xff, 0x7d]),
    };
    expect(githubWebhook.parse(notUtf8).kind).toBe("invalid");
  });

  it("lists the event types it produces", () => {
    expect(githubWebhook.eventTypes).toContain("github.pull_request.opened");
    expect(githubWebhook.eventTypes).toContain("github.push");
    expect(githubWebhook.eventTypes).toContain("github.installation.deleted");
  });
});

describe("githubWebhook.resolveConnection", () => {
  const event: WebhookEvent = {
    deliveryId: "d",
    eventType: "github.push",
    externalSubjectId: "4242",
    payload: {},
  };

  it("finds the connection holding the installation id", () => {
    const candidates = [
      { id: "conn_a", externalSubjectId: "1", config: {} },
      { id: "conn_b", externalSubjectId: "4242", config: {} },
      { id: "conn_c", config: {} },
    ];
    expect(githubWebhook.resolveConnection(event, candidates)).toBe("conn_b");
  });

  it("leaves the event unassigned with no match, no installation, or an ambiguous match", () => {
    expect(
      githubWebhook.resolveConnection(event, [
        { id: "conn_a", externalSubjectId: "42", config: {} },
      ]),
    ).toBe(undefined);
    const { externalSubjectId: _omitted, ...noInstallation } = event;
    expect(
      githubWebhook.resolveConnection(noInstallation, [
        { id: "conn_a", externalSubjectId: "4242", config: {} },
      ]),
    ).toBe(undefined);
    expect(
      githubWebhook.resolveConnection(event, [
        { id: "conn_a", externalSubjectId: "4242", config: {} },
        { id: "conn_b", externalSubjectId: "4242", config: {} },
      ]),
    ).toBe(undefined);
  });
});
