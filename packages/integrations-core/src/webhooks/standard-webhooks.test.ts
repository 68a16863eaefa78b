import { describe, expect, it } from "vitest";
import {
  decodeStandardWebhookSecret,
  generateStandardWebhookSecret,
  signStandardWebhook,
  verifyStandardWebhook,
} from "./standard-webhooks";

// The published Standard Webhooks test vector: the "sign function works" test of the reference
// JavaScript library (github.com/standard-webhooks/standard-webhooks,
// libraries/javascript/src/webhook.test.ts); the same values appear in the PHP, Java and other
// reference libraries. Only the values are used here.
const VECTOR = {
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
} as const;

const vectorNow = new Date(VECTOR.timestamp * 1000);
const vectorHeaders = {
  "webhook-id": VECTOR.id,
  "webhook-timestamp": String(VECTOR.timestamp),
  "webhook-signature": VECTOR.signature,
};

describe("signStandardWebhook", () => {
  it("reproduces the published test vector", () => {
    const headers = signStandardWebhook({
      secret: VECTOR.secret,
      id: VECTOR.id,
      timestamp: VECTOR.timestamp,
      body: VECTOR.body,
    });
    expect(headers).toEqual(vectorHeaders);
  });

  it("signs bytes the same as the equivalent string", () => {
    const fromBytes = signStandardWebhook({
      secret: VECTOR.secret,
      id: VECTOR.id,
      timestamp: VECTOR.timestamp,
      body: new TextEncoder().encode(VECTOR.body),
    });
    expect(fromBytes["webhook-signature"]).toBe(VECTOR.signature);
  });

  it("refuses invalid secrets, ids and timestamps", () => {
    const base = { secret: VECTOR.secret, id: VECTOR.id, timestamp: VECTOR.timestamp, body: "" };
    expect(() =>
      signStandardWebhook({ ...base, secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }),
    ).toThrow(TypeError);
    expect(() => signStandardWebhook({ ...base, secret: "whsec_c2hvcnQ=" })).toThrow(TypeError);
    expect(() => signStandardWebhook({ ...base, id: "" })).toThrow(TypeError);
    expect(() => signStandardWebhook({ ...base, id: "msg.1" })).toThrow(TypeError);
    expect(() => signStandardWebhook({ ...base, timestamp: 1.5 })).toThrow(TypeError);
    expect(() => signStandardWebhook({ ...base, timestamp: -1 })).toThrow(TypeError);
  });
});

describe("verifyStandardWebhook", () => {
  const verify = (
    overrides: Partial<Parameters<typeof verifyStandardWebhook>[0]> = {},
  ): ReturnType<typeof verifyStandardWebhook> =>
    verifyStandardWebhook({
      secret: VECTOR.secret,
      headers: vectorHeaders,
      body: VECTOR.body,
      now: vectorNow,
      ...overrides,
    });

  it("accepts the published test vector", () => {
    expect(verify()).toEqual({ ok: true, id: VECTOR.id, timestamp: VECTOR.timestamp });
  });

  it("accepts the bare base64 secret and a byte body", () => {
    expect(verify({ secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }).ok).toBe(true);
    expect(verify({ body: new TextEncoder().encode(VECTOR.body) }).ok).toBe(true);
  });

  it("round-trips with a generated secret", () => {
    const secret = generateStandardWebhookSecret();
    const now = new Date("2025-06-01T12:00:00Z");
    const timestamp = Math.floor(now.getTime() / 1000);
    const body = '{"type":"event.created"}';
    const headers = signStandardWebhook({ secret, id: "evt_1", timestamp, body });
    expect(verifyStandardWebhook({ secret, headers, body, now })).toEqual({
      ok: true,
      id: "evt_1",
      timestamp,
    });
  });

  it("rejects a tampered body", () => {
    expect(verify({ body: '{"test": 2432232315}' })).toEqual({
      ok: false,
      reason: "bad_signature",
    });
    expect(verify({ body: `${VECTOR.body} ` })).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("rejects a tampered id or timestamp, which the signature covers", () => {
    expect(verify({ headers: { ...vectorHeaders, "webhook-id": "msg_other" } })).toEqual({
      ok: false,
      reason: "bad_signature",
    });
    expect(
      verify({ headers: { ...vectorHeaders, "webhook-timestamp": String(VECTOR.timestamp + 1) } }),
    ).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("rejects a different secret", () => {
    expect(verify({ secret: generateStandardWebhookSecret() })).toEqual({
      ok: false,
      reason: "bad_signature",
    });
  });

  it("reports a secret that is not usable", () => {
    for (const secret of [
      "",
      "whsec_",
      "whsec_not base64!",
      "whsec_c2hvcnQ=",
      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",
    ]) {
      expect(verify({ secret })).toEqual({ ok: false, reason: "invalid_secret" });
    }
  });

  it("reports each missing or empty header", () => {
    for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"] as const) {
      const withoutIt: Record<string, string> = { ...vectorHeaders };
      delete withoutIt[name];
      expect(verify({ headers: withoutIt })).toEqual({ ok: false, reason: "missing_header" });
      expect(verify({ headers: { ...vectorHeaders, [name]: "" } })).toEqual({
        ok: false,
        reason: "missing_header",
      });
    }
  });

  it("rejects timestamps that are not integer seconds", () => {
    for (const ts of [
      "hello",
      "1614265330.0",
      "-1614265330",
      " 1614265330",
      "01614265330",
      "1e9",
    ]) {
      expect(verify({ headers: { ...vectorHeaders, "webhook-timestamp": ts } })).toEqual({
        ok: false,
        reason: "invalid_timestamp",
      });
    }
  });

  it("rejects stale timestamps in the past and the future, with a 5-minute default", () => {
    const at = (offsetSeconds: number) => new Date((VECTOR.timestamp + offsetSeconds) * 1000);
    expect(verify({ now: at(300) }).ok).toBe(true);
    expect(verify({ now: at(-300) }).ok).toBe(true);
    expect(verify({ now: at(301) })).toEqual({ ok: false, reason: "stale_timestamp" });
    expect(verify({ now: at(-301) })).toEqual({ ok: false, reason: "stale_timestamp" });
    expect(verify({ now: at(301), toleranceSeconds: 600 }).ok).toBe(true);
    expect(verify({ now: at(61), toleranceSeconds: 60 })).toEqual({
      ok: false,
      reason: "stale_timestamp",
    });
  });

  it("accepts a header with several signatures when one v1 entry matches", () => {
    const signature = [
      "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
      "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
      VECTOR.signature,
      "garbage",
    ].join(" ");
    expect(verify({ headers: { ...vectorHeaders, "webhook-signature": signature } }).ok).toBe(true);
  });

  it("ignores v1a and other versions even when they carry the right bytes", () => {
    const digest = VECTOR.signature.slice("v1,".length);
    for (const signature of [
      `v1a,${digest}`,
      `v2,${digest}`,
      `V1,${digest}`,
      digest,
      `v1,${digest.slice(0, 8)}`,
    ]) {
      expect(verify({ headers: { ...vectorHeaders, "webhook-signature": signature } })).toEqual({
        ok: false,
        reason: "bad_signature",
      });
    }
  });
});

describe("generateStandardWebhookSecret", () => {
  it("produces distinct whsec_ secrets of 32 bytes", () => {
    const a = generateStandardWebhookSecret();
    const b = generateStandardWebhookSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(a).not.toBe(b);
    expect(decodeStandardWebhookSecret(a)?.length).toBe(32);
  });
});
