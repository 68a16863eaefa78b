import { createHmac } from "node:crypto";
import { normalizeHeaders, type WebhookRequest } from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import { LINEAR_EVENT_TYPES, linearWebhook } from "./webhook";

// Linear publishes no signed example, so the test signs its own payload with node:crypto
// (independently of the code under test), in the shape Linear documents: hex HMAC-SHA256 of the
// raw body in `Linear-Signature` (linear.app/developers/webhooks).
const SECRET = "lin_wh_5b9c2e0f7a1d4c3b8e6f";
const NOW = new Date("2026-03-01T12:00:00.000Z");

const body = JSON.stringify({
  action: "create",
  type: "Issue",
  createdAt: "2026-03-01T11:59:59.120Z",
  organizationId: "org-1234",
  url: "https://linear.app/acme/issue/ENG-42",
  data: { id: "issue-42", identifier: "ENG-42", title: "Crash on save" },
  webhookTimestamp: NOW.getTime() - 500,
  webhookId: "3f1c0f56-8d5e-4a0c-b6b8-0d8c4bbf4a11",
});

function sign(raw: string, secret = SECRET): string {
  return createHmac("sha256", secret).update(raw).digest("hex");
}

function request(raw: string, headers: Record<string, string> = {}): WebhookRequest {
  return {
    headers: normalizeHeaders({
      "Content-Type": "application/json; charset=utf-8",
      "Linear-Delivery": "b7a5d0a8-4a61-4d7f-9e53-2b7f0f0f2a99",
      "Linear-Event": "Issue",
      "Linear-Signature": sign(raw),
      ...headers,
    }),
    rawBody: new TextEncoder().encode(raw),
  };
}

const verify = (
  req: WebhookRequest,
  secrets: { webhookSecret?: string } = { webhookSecret: SECRET },
  now = NOW,
) => linearWebhook.verify(req, { targetConfig: {}, targetSecrets: secrets, now });

describe("linear webhook parse", () => {
  it("turns a delivery into an event keyed by Linear-Delivery", () => {
    expect(linearWebhook.parse(request(body))).toEqual({
      kind: "event",
      event: {
        deliveryId: "b7a5d0a8-4a61-4d7f-9e53-2b7f0f0f2a99",
        eventType: "linear.issue.create",
        externalSubjectId: "org-1234",
        occurredAt: "2026-03-01T11:59:59.120Z",
        payload: JSON.parse(body),
      },
    });
  });

  it("lower-cases the type and keeps Linear's action", () => {
    const raw = JSON.stringify({ action: "highRisk", type: "IssueSLA", organizationId: "org-1" });
    const result = linearWebhook.parse(request(raw));
    expect(result.kind === "event" && result.event.eventType).toBe("linear.issuesla.highRisk");
    expect(LINEAR_EVENT_TYPES).toContain("linear.issuesla.highRisk");
    expect(LINEAR_EVENT_TYPES).toContain("linear.issuelabel.update");
    expect(LINEAR_EVENT_TYPES).toContain("linear.oauthapp.revoked");
  });

  it("falls back to the body's webhookId when the delivery header is absent", () => {
    const req = request(body);
    const { "linear-delivery": _, ...headers } = req.headers;
    const result = linearWebhook.parse({ ...req, headers });
    expect(result.kind === "event" && result.event.deliveryId).toBe(
      "3f1c0f56-8d5e-4a0c-b6b8-0d8c4bbf4a11",
    );
  });

  it.each([
    ["malformed JSON", "{not json"],
    ["a JSON array", "[]"],
    ["a body without type", JSON.stringify({ action: "create" })],
    ["a body without action", JSON.stringify({ type: "Issue" })],
  ])("calls %s invalid", (_name, raw) => {
    expect(linearWebhook.parse(request(raw)).kind).toBe("invalid");
  });

  it("calls a body that is not UTF-8 invalid", () => {
    const req = { ...request(""), rawBody: Uint8Array.of(0x7b, 0xff, 0xfe, 0x7d) };
    expect(linearWebhook.parse(req).kind).toBe("invalid");
  });

  it("calls a delivery without any delivery id invalid", () => {
    const raw = JSON.stringify({ action: "create", type: "Issue" });
    const { "linear-delivery": _, ...headers } = request(raw).headers;
    expect(linearWebhook.parse({ headers, rawBody: new TextEncoder().encode(raw) }).kind).toBe(
      "invalid",
    );
  });
});

describe("linear webhook verify", () => {
  it("accepts a correctly signed, fresh delivery", () => {
    expect(verify(request(body))).toEqual({ ok: true });
  });

  it("accepts an upper-case hex signature", () => {
    expect(verify(request(body, { "Linear-Signature": sign(body).toUpperCase() }))).toEqual({
      ok: true,
    });
  });

  it("rejects a tampered body", () => {
    const req = request(body);
    const tampered = body.replace("Crash on save", "Crash on load");
    expect(verify({ ...req, rawBody: new TextEncoder().encode(tampered) })).toEqual({
      ok: false,
      reason: "bad_signature",
    });
  });

  it("rejects a signature made with another secret", () => {
    expect(verify(request(body, { "Linear-Signature": sign(body, "another-secret") }))).toEqual({
      ok: false,
      reason: "bad_signature",
    });
  });

  it("rejects a delivery without a signature", () => {
    const { "linear-signature": _, ...headers } = request(body).headers;
    expect(verify({ headers, rawBody: new TextEncoder().encode(body) })).toEqual({
      ok: false,
      reason: "missing_signature",
    });
  });

  it("accepts nothing while the target has no webhook secret", () => {
    expect(verify(request(body), {})).toEqual({ ok: false, reason: "missing_secret" });
  });

  it("allows 60 s of clock difference either way and no more", () => {
    const at = (deltaMs: number) => {
      const raw = JSON.stringify({
        action: "update",
        type: "Issue",
        webhookTimestamp: NOW.getTime() + deltaMs,
      });
      return verify(request(raw));
    };
    expect(at(-60_000)).toEqual({ ok: true });
    expect(at(60_000)).toEqual({ ok: true });
    expect(at(-60_001)).toEqual({ ok: false, reason: "stale_timestamp" });
    expect(at(60_001)).toEqual({ ok: false, reason: "stale_timestamp" });
  });

  it("refuses a signed body without webhookTimestamp", () => {
    const raw = JSON.stringify({ action: "update", type: "Issue" });
    expect(verify(request(raw))).toEqual({ ok: false, reason: "stale_timestamp" });
  });
});

describe("linear webhook connection resolution", () => {
  const candidates = [
    { id: "conn_a", externalSubjectId: "org-0001", config: {} },
    { id: "conn_b", externalSubjectId: "org-1234", config: {} },
    { id: "conn_c", config: {} },
  ];

  it("matches the organization id to the connection's external subject", () => {
    const result = linearWebhook.parse(request(body));
    if (result.kind !== "event") throw new Error("expected an event");
    expect(linearWebhook.resolveConnection(result.event, candidates)).toBe("conn_b");
  });

  it("resolves nothing for an unknown or missing organization", () => {
    const event = { deliveryId: "d", eventType: "linear.issue.create", payload: {} };
    expect(linearWebhook.resolveConnection(event, candidates)).toBeUndefined();
    expect(
      linearWebhook.resolveConnection({ ...event, externalSubjectId: "org-9999" }, candidates),
    ).toBeUndefined();
  });
});
