import { createHmac } from "node:crypto";
import { normalizeHeaders, type WebhookRequest } from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import { SLACK_EVENT_TYPES, slackWebhook } from "./webhook";

// The worked example from Slack's "Verifying requests from Slack"
// (api.slack.com/authentication/verifying-requests-from-slack): a slash command body, signed at
// 1531420618 with signing secret 8f742231b10e8888abcd99yyyzzz85a5.
const DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5";
const DOC_TIMESTAMP = "1531420618";
const DOC_BODY =
  "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
const DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
const DOC_NOW = new Date((Number(DOC_TIMESTAMP) + 30) * 1000);

function docRequest(
  overrides: Record<string, string | undefined> = {},
  body = DOC_BODY,
): WebhookRequest {
  const headers: Record<string, string> = {
    "Content-Type": "application/x-www-form-urlencoded",
    "X-Slack-Request-Timestamp": DOC_TIMESTAMP,
    "X-Slack-Signature": DOC_SIGNATURE,
  };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete headers[name];
    else headers[name] = value;
  }
  return { headers: normalizeHeaders(headers), rawBody: new TextEncoder().encode(body) };
}

const verify = (
  req: WebhookRequest,
  secrets: { signingSecret?: string } = { signingSecret: DOC_SECRET },
  now = DOC_NOW,
) => slackWebhook.verify(req, { targetConfig: {}, targetSecrets: secrets, now });

describe("slack webhook verify", () => {
  it("accepts Slack's published example", () => {
    expect(verify(docRequest())).toEqual({ ok: true });
  });

  it("rejects a tampered body", () => {
    expect(verify(docRequest({}, DOC_BODY.replace("roadrunner", "coyote")))).toEqual({
      ok: false,
      reason: "bad_signature",
    });
  });

  it("rejects a tampered timestamp, which the signature covers", () => {
    expect(verify(docRequest({ "X-Slack-Request-Timestamp": "1531420619" }))).toEqual({
      ok: false,
      reason: "bad_signature",
    });
  });

  it("rejects a wrong signing secret", () => {
    expect(verify(docRequest(), { signingSecret: "0000000000000000000000000000000" })).toEqual({
      ok: false,
      reason: "bad_signature",
    });
  });

  it("rejects a signature without the v0= prefix", () => {
    expect(verify(docRequest({ "X-Slack-Signature": DOC_SIGNATURE.slice(3) }))).toEqual({
      ok: false,
      reason: "bad_signature",
    });
  });

  it.each(["X-Slack-Signature", "X-Slack-Request-Timestamp"])(
    "rejects a request without %s",
    (header) => {
      expect(verify(docRequest({ [header]: undefined }))).toEqual({
        ok: false,
        reason: "missing_signature",
      });
    },
  );

  it("rejects a non-numeric timestamp", () => {
    expect(verify(docRequest({ "X-Slack-Request-Timestamp": "1531420618.5" }))).toEqual({
      ok: false,
      reason: "bad_signature",
    });
  });

  it("accepts nothing while the target has no signing secret", () => {
    expect(verify(docRequest(), {})).toEqual({ ok: false, reason: "missing_secret" });
  });

  it("allows five minutes either way and no more", () => {
    const at = (seconds: number) =>
      verify(docRequest(), undefined, new Date((Number(DOC_TIMESTAMP) + seconds) * 1000));
    expect(at(300)).toEqual({ ok: true });
    expect(at(-300)).toEqual({ ok: true });
    expect(at(301)).toEqual({ ok: false, reason: "stale_timestamp" });
    expect(at(-301)).toEqual({ ok: false, reason: "stale_timestamp" });
    // The example's own instant, years later: a replay of a genuine request.
    expect(verify(docRequest(), undefined, new Date("2026-03-01T12:00:00Z"))).toEqual({
      ok: false,
      reason: "stale_timestamp",
    });
  });
});

describe("slack webhook parse", () => {
  const SECRET = "e3b98f2c41d5a7c6b0f9e8d7c6b5a4f3";
  const NOW = new Date("2026-03-01T12:00:00.000Z");
  const timestamp = String(Math.floor(NOW.getTime() / 1000));

  function signed(body: object, headers: Record<string, string> = {}): WebhookRequest {
    const raw = JSON.stringify(body);
    const signature = `v0=${createHmac("sha256", SECRET).update(`v0:${timestamp}:${raw}`).digest("hex")}`;
    return {
      headers: normalizeHeaders({
        "content-type": "application/json",
        "x-slack-request-timestamp": timestamp,
        "x-slack-signature": signature,
        ...headers,
      }),
      rawBody: new TextEncoder().encode(raw),
    };
  }

  const eventCallback = {
    token: "XXYYZZ",
    team_id: "T0123ABCD",
    api_app_id: "A0123ABCD",
    event: {
      type: "app_mention",
      user: "U061F7AUR",
      text: "<@U0LAN0Z89> is it everything a river should be?",
      ts: "1515449522.000016",
      channel: "C0LAN2Q65",
      event_ts: "1515449522000016",
    },
    type: "event_callback",
    event_id: "Ev0LAN670R",
    event_time: 1515449522,
    authorizations: [{ team_id: "T0123ABCD", user_id: "U0LAN0Z89", is_bot: true }],
  };

  it("answers url_verification at once with the challenge as plain text", () => {
    const result = slackWebhook.parse(
      signed({
        token: "Jhj5dZrVaK7ZwHHjRyZWjbDl",
        challenge: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        type: "url_verification",
      }),
    );
    expect(result).toEqual({
      kind: "response",
      response: {
        status: 200,
        headers: { "content-type": "text/plain; charset=utf-8" },
        body: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
      },
    });
  });

  it("turns an event_callback into an event keyed by event_id", () => {
    const req = signed(eventCallback);
    expect(
      slackWebhook.verify(req, {
        targetConfig: {},
        targetSecrets: { signingSecret: SECRET },
        now: NOW,
      }),
    ).toEqual({ ok: true });
    expect(slackWebhook.parse(req)).toEqual({
      kind: "event",
      event: {
        deliveryId: "Ev0LAN670R",
        eventType: "slack.app_mention",
        externalSubjectId: "T0123ABCD",
        occurredAt: "2018-01-08T22:12:02.000Z",
        payload: eventCallback,
      },
    });
    expect(SLACK_EVENT_TYPES).toContain("slack.app_mention");
  });

  it("marks Slack's retries with their attempt number", () => {
    const result = slackWebhook.parse(
      signed(eventCallback, { "X-Slack-Retry-Num": "2", "X-Slack-Retry-Reason": "http_timeout" }),
    );
    expect(result.kind === "event" && result.event).toMatchObject({
      deliveryId: "Ev0LAN670R",
      retryAttempt: 2,
    });
  });

  it("acknowledges app_rate_limited notices without an event", () => {
    const result = slackWebhook.parse(
      signed({
        token: "x",
        type: "app_rate_limited",
        team_id: "T0123ABCD",
        minute_rate_limited: 1518467820,
      }),
    );
    expect(result).toEqual({ kind: "response", response: { status: 200, body: "" } });
  });

  it.each([
    ["malformed JSON", "{nope"],
    ["a form body", DOC_BODY],
    ["an unknown type", JSON.stringify({ type: "block_actions" })],
    ["url_verification without a challenge", JSON.stringify({ type: "url_verification" })],
    ["event_callback without event_id", JSON.stringify({ ...eventCallback, event_id: undefined })],
    [
      "event_callback without event.type",
      JSON.stringify({ ...eventCallback, event: { user: "U1" } }),
    ],
  ])("calls %s invalid", (_name, raw) => {
    const result = slackWebhook.parse({ headers: {}, rawBody: new TextEncoder().encode(raw) });
    expect(result.kind).toBe("invalid");
  });
});

describe("slack webhook connection resolution", () => {
  const candidates = [
    { id: "conn_ws", externalSubjectId: "T0123ABCD", config: {} },
    { id: "conn_org", externalSubjectId: "E0123ABCD", config: {} },
  ];
  const event = { deliveryId: "Ev1", eventType: "slack.message", payload: {} };

  it("matches the workspace (team) id", () => {
    expect(
      slackWebhook.resolveConnection({ ...event, externalSubjectId: "T0123ABCD" }, candidates),
    ).toBe("conn_ws");
  });

  it("falls back to the enterprise id for org-wide installs", () => {
    expect(
      slackWebhook.resolveConnection(
        { ...event, externalSubjectId: "T9999ZZZZ", payload: { enterprise_id: "E0123ABCD" } },
        candidates,
      ),
    ).toBe("conn_org");
  });

  it("resolves nothing for an unknown workspace", () => {
    expect(
      slackWebhook.resolveConnection({ ...event, externalSubjectId: "T9999ZZZZ" }, candidates),
    ).toBeUndefined();
  });
});
