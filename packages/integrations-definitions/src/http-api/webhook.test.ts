import {
  generateStandardWebhookSecret,
  normalizeHeaders,
  signStandardWebhook,
  type WebhookRequest,
} from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import { httpApiDefinition } from "./definition";
import { httpApiTargetConfigSchema } from "./target-config-schema";
import { httpApiWebhook } from "./webhook";

/** A target that turned inbound Standard Webhooks on. */
const WEBHOOK_TARGET = httpApiTargetConfigSchema.parse({
  baseUrl: "https://api.acme.example",
  webhook: { scheme: "standard-webhooks" },
});

// The published Standard Webhooks test vector ("sign function works" in the reference libraries,
// github.com/standard-webhooks/standard-webhooks, e.g. libraries/php/tests/WebhookTest.php).
const VECTOR = {
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
} as const;

const vectorNow = new Date(VECTOR.timestamp * 1000);
const encode = (text: string) => new TextEncoder().encode(text);

function request(headers: Record<string, string>, body: string): WebhookRequest {
  // Ingest hands definitions lower-cased headers; senders spell them in any case.
  return { headers: normalizeHeaders(headers), rawBody: encode(body) };
}

const vectorRequest = (overrides: Record<string, string> = {}, body: string = VECTOR.body) =>
  request(
    {
      "Webhook-Id": VECTOR.id,
      "Webhook-Timestamp": String(VECTOR.timestamp),
      "Webhook-Signature": VECTOR.signature,
      ...overrides,
    },
    body,
  );

const verify = (
  req: WebhookRequest,
  secrets: { webhookSecret?: string } = { webhookSecret: VECTOR.secret },
  now = vectorNow,
) => httpApiWebhook.verify(req, { targetConfig: WEBHOOK_TARGET, targetSecrets: secrets, now });

describe("http-api webhook verify (Standard Webhooks)", () => {
  it("refuses every delivery when the target has not turned webhooks on", () => {
    const withoutWebhooks = httpApiTargetConfigSchema.parse({
      baseUrl: "https://api.acme.example",
    });
    expect(
      httpApiWebhook.verify(vectorRequest(), {
        targetConfig: withoutWebhooks,
        targetSecrets: { webhookSecret: VECTOR.secret },
        now: vectorNow,
      }),
    ).toEqual({ ok: false, reason: "missing_secret" });
    expect(verify(vectorRequest())).toEqual({ ok: true });
  });

  it("is the definition's webhook behaviour", () => {
    expect(httpApiDefinition.webhook).toBe(httpApiWebhook);
    expect(httpApiWebhook.eventTypes).toEqual(["http-api.event"]);
  });

  it("accepts the published test vector", () => {
    expect(verify(vectorRequest())).toEqual({ ok: true });
  });

  it("accepts a signature list where one v1 entry matches", () => {
    const signatures = `v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= ${VECTOR.signature}`;
    expect(verify(vectorRequest({ "Webhook-Signature": signatures }))).toEqual({ ok: true });
  });

  it("rejects a tampered body, id or timestamp", () => {
    expect(verify(vectorRequest({}, '{"test": 2432232315}'))).toEqual({
      ok: false,
      reason: "bad_signature",
    });
    expect(verify(vectorRequest({ "Webhook-Id": "msg_other" }))).toEqual({
      ok: false,
      reason: "bad_signature",
    });
    expect(verify(vectorRequest({ "Webhook-Timestamp": String(VECTOR.timestamp + 1) }))).toEqual({
      ok: false,
      reason: "bad_signature",
    });
  });

  it("rejects a wrong secret", () => {
    expect(verify(vectorRequest(), { webhookSecret: generateStandardWebhookSecret() })).toEqual({
      ok: false,
      reason: "bad_signature",
    });
  });

  it("reports each missing header as a missing signature", () => {
    for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"]) {
      const headers: Record<string, string> = {
        "webhook-id": VECTOR.id,
        "webhook-timestamp": String(VECTOR.timestamp),
        "webhook-signature": VECTOR.signature,
      };
      delete headers[name];
      expect(verify(request(headers, VECTOR.body)), name).toEqual({
        ok: false,
        reason: "missing_signature",
      });
    }
  });

  it("rejects timestamps more than five minutes away, in either direction", () => {
    const at = (offsetSeconds: number) => new Date((VECTOR.timestamp + offsetSeconds) * 1000);
    expect(verify(vectorRequest(), undefined, at(300))).toEqual({ ok: true });
    expect(verify(vectorRequest(), undefined, at(301))).toEqual({
      ok: false,
      reason: "stale_timestamp",
    });
    expect(verify(vectorRequest(), undefined, at(-301))).toEqual({
      ok: false,
      reason: "stale_timestamp",
    });
  });

  it("rejects a malformed timestamp", () => {
    expect(verify(vectorRequest({ "Webhook-Timestamp": "2021-02-25T15:02:10Z" }))).toEqual({
      ok: false,
      reason: "bad_signature",
    });
  });

  it("refuses every delivery when the target has no webhook secret", () => {
    expect(verify(vectorRequest(), {})).toEqual({ ok: false, reason: "missing_secret" });
  });
});

describe("http-api webhook parse", () => {
  it("turns the test vector into a generic event keyed by webhook-id", () => {
    expect(httpApiWebhook.parse(vectorRequest())).toEqual({
      kind: "event",
      event: {
        deliveryId: VECTOR.id,
        eventType: "http-api.event",
        payload: { test: 2432232314 },
      },
    });
  });

  it("takes the event type, occurrence time and connection from a Standard Webhooks payload", () => {
    const secret = generateStandardWebhookSecret();
    const now = new Date("2025-03-01T12:00:00Z");
    const body = JSON.stringify({
      type: "invoice.paid",
      timestamp: "2025-03-01T11:59:58Z",
      connection_id: "acct_42",
      data: { id: "inv_1" },
    });
    const headers = signStandardWebhook({
      secret,
      id: "evt_1",
      timestamp: now.getTime() / 1000,
      body,
    });
    const req = request({ ...headers }, body);
    expect(
      httpApiWebhook.verify(req, {
        targetConfig: WEBHOOK_TARGET,
        targetSecrets: { webhookSecret: secret },
        now,
      }),
    ).toEqual({
      ok: true,
    });
    expect(httpApiWebhook.parse(req)).toEqual({
      kind: "event",
      event: {
        deliveryId: "evt_1",
        eventType: "http-api.invoice.paid",
        externalSubjectId: "acct_42",
        occurredAt: "2025-03-01T11:59:58Z",
        payload: {
          type: "invoice.paid",
          timestamp: "2025-03-01T11:59:58Z",
          connection_id: "acct_42",
          data: { id: "inv_1" },
        },
      },
    });
  });

  it("falls back to the generic type for payloads without a usable type", () => {
    for (const body of ['{"type": 7}', '{"type": ""}', "[1, 2]", '"text"', "null"]) {
      const parsed = httpApiWebhook.parse(vectorRequest({}, body));
      expect(parsed.kind === "event" && parsed.event.eventType, body).toBe("http-api.event");
    }
  });

  it("reports a missing webhook-id or a body that is not JSON as invalid", () => {
    expect(httpApiWebhook.parse(request({ "webhook-timestamp": "1" }, "{}")).kind).toBe("invalid");
    expect(httpApiWebhook.parse(vectorRequest({}, "not json")).kind).toBe("invalid");
    expect(
      httpApiWebhook.parse({ headers: { "webhook-id": "m" }, rawBody: Uint8Array.of(0xff, 0xfe) })
        .kind,
    ).toBe("invalid");
  });
});

describe("http-api webhook resolveConnection", () => {
  const event = (externalSubjectId?: string) => ({
    deliveryId: "evt_1",
    eventType: "http-api.event",
    payload: {},
    ...(externalSubjectId !== undefined ? { externalSubjectId } : {}),
  });
  const candidates = [
    { id: "conn_a", externalSubjectId: "acct_1", config: {} },
    { id: "conn_b", externalSubjectId: "acct_2", config: {} },
  ];

  it("picks the only candidate", () => {
    expect(httpApiWebhook.resolveConnection(event(), [{ id: "conn_a", config: {} }])).toBe(
      "conn_a",
    );
  });

  it("picks the connection the payload names, by connection id or external subject id", () => {
    expect(httpApiWebhook.resolveConnection(event("conn_b"), candidates)).toBe("conn_b");
    expect(httpApiWebhook.resolveConnection(event("acct_1"), candidates)).toBe("conn_a");
  });

  it("guesses nothing otherwise", () => {
    expect(httpApiWebhook.resolveConnection(event(), candidates)).toBeUndefined();
    expect(httpApiWebhook.resolveConnection(event("acct_9"), candidates)).toBeUndefined();
    expect(httpApiWebhook.resolveConnection(event("acct_1"), [])).toBeUndefined();
    const ambiguous = [...candidates, { id: "conn_c", externalSubjectId: "acct_1", config: {} }];
    expect(httpApiWebhook.resolveConnection(event("acct_1"), ambiguous)).toBeUndefined();
  });
});
