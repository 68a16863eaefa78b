import { createHmac, randomUUID } from "node:crypto";
import { request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createAdaptorServer } from "@hono/node-server";
import { webhookEventPayload, webhookEvents } from "@keyway/db";
import { generateStandardWebhookSecret, signStandardWebhook } from "@keyway/integrations-core";
import { JOB_SCHEMA, webhookProcessQueue } from "@keyway/jobs";
import { and, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type SeededTarget,
  seedConnection,
  seedOrganization,
  seedTarget,
} from "../internal/fixtures";
import { createTestApp, lastAuditEntry, type TestApp } from "../testing/test-app";

/**
 * The provider front door through the real route, on real PostgreSQL: every definition with
 * webhooks signs the way its provider does; the refusals of SPEC §10 store nothing but an audit
 * entry; duplicates are stored once and queued once; the event, its dedupe key and its job commit
 * together or not at all.
 */

const GITHUB_SECRET = "gh-webhook-secret-9f2c";
const SLACK_SECRET = "slack-signing-secret-44aa";
const LINEAR_SECRET = "linear-webhook-secret-7b1e";
const HTTP_API_SECRET = generateStandardWebhookSecret();
const BODY_LIMIT = 64 * 1024;

let t: TestApp;
let organizationId: string;
let github: SeededTarget;
let ghes: SeededTarget;
let slack: SeededTarget;
let linear: SeededTarget;
let httpApi: SeededTarget;
let disabled: SeededTarget;

beforeAll(async () => {
  t = await createTestApp({ settings: { webhookBodyLimitBytes: BODY_LIMIT } });
  const db = t.deps.database.db;
  organizationId = await seedOrganization(db, t.clock);
  github = await seedTarget(db, t.deps, {
    variantId: "github-cloud",
    secrets: { webhookSecret: GITHUB_SECRET },
  });
  ghes = await seedTarget(db, t.deps, {
    variantId: "github-enterprise-server",
    config: { webBaseUrl: "https://ghe.example.com" },
    secrets: { webhookSecret: GITHUB_SECRET },
  });
  slack = await seedTarget(db, t.deps, {
    variantId: "slack",
    secrets: { signingSecret: SLACK_SECRET },
  });
  linear = await seedTarget(db, t.deps, {
    variantId: "linear",
    secrets: { webhookSecret: LINEAR_SECRET },
  });
  httpApi = await seedTarget(db, t.deps, {
    variantId: "http-api",
    config: {
      baseUrl: "https://api.internal.example.com/v1",
      webhook: { scheme: "standard-webhooks" },
    },
    secrets: { webhookSecret: HTTP_API_SECRET },
  });
  disabled = await seedTarget(db, t.deps, {
    variantId: "github-cloud",
    secrets: { webhookSecret: GITHUB_SECRET },
    enabled: false,
  });
  for (const [target, methodId, subject] of [
    [github, "github-app", "4242"],
    [ghes, "github-app", "77"],
    [slack, "oauth2", "T0001"],
    [linear, "api-key", "lin-org-1"],
    [httpApi, "api-key", undefined],
  ] as const) {
    await seedConnection(db, t.deps, {
      organizationId,
      target,
      methodId,
      ...(subject !== undefined ? { externalSubjectId: subject } : {}),
    });
  }
});
afterAll(async () => {
  await t.close();
});

interface Post {
  status: number;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read response JSON freely and assert on it.
  body: any;
}

async function post(
  targetKey: string,
  body: string,
  headers: Record<string, string>,
): Promise<Post> {
  const response = await t.app.request(`/p/integration/webhooks/${targetKey}`, {
    method: "POST",
    headers,
    body,
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, text, body: parsed } satisfies Post;
}

function githubRequest(
  event: string,
  payload: unknown,
  options: { delivery?: string; secret?: string } = {},
) {
  const body = JSON.stringify(payload);
  const signature = createHmac("sha256", options.secret ?? GITHUB_SECRET)
    .update(body)
    .digest("hex");
  return {
    body,
    headers: {
      "content-type": "application/json",
      "x-github-event": event,
      "x-github-delivery": options.delivery ?? randomUUID(),
      "x-hub-signature-256": `sha256=${signature}`,
      "user-agent": "GitHub-Hookshot/abc",
    },
  };
}

function slackRequest(payload: unknown, options: { timestamp?: number; retry?: number } = {}) {
  const body = JSON.stringify(payload);
  const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
  const signature = createHmac("sha256", SLACK_SECRET)
    .update(`v0:${timestamp}:${body}`)
    .digest("hex");
  return {
    body,
    headers: {
      "content-type": "application/json",
      "x-slack-request-timestamp": timestamp,
      "x-slack-signature": `v0=${signature}`,
      ...(options.retry !== undefined ? { "x-slack-retry-num": String(options.retry) } : {}),
    },
  };
}

function linearRequest(payload: Record<string, unknown>, delivery = randomUUID()) {
  const body = JSON.stringify({ webhookTimestamp: Date.now(), ...payload });
  return {
    body,
    headers: {
      "content-type": "application/json",
      "linear-delivery": delivery,
      "linear-event": String(payload.type),
      "linear-signature": createHmac("sha256", LINEAR_SECRET).update(body).digest("hex"),
    },
  };
}

function standardRequest(payload: unknown, options: { id?: string; timestamp?: number } = {}) {
  const body = JSON.stringify(payload);
  const headers = signStandardWebhook({
    secret: HTTP_API_SECRET,
    id: options.id ?? `msg_${randomUUID().replaceAll("-", "")}`,
    timestamp: options.timestamp ?? Math.floor(Date.now() / 1000),
    body,
  });
  return { body, headers: { "content-type": "application/json", ...headers } };
}

/** A target's stored events, `payload` read as every reader does (`webhookEventPayload`). */
async function eventsOf(target: SeededTarget) {
  const rows = await t.deps.database.db
    .select({ event: webhookEvents, payload: webhookEventPayload })
    .from(webhookEvents)
    .where(eq(webhookEvents.targetId, target.id));
  return rows.map(({ event, payload }) => ({ ...event, payload }));
}

async function jobsFor(eventId: string) {
  return t.deps.database.db.execute<{ id: string; state: string }>(
    sql`select id, state from ${sql.identifier(JOB_SCHEMA)}.job
        where name = ${webhookProcessQueue.name} and data->>'eventId' = ${eventId}`,
  );
}

async function countRows() {
  const [row] = await t.deps.database.db.execute<{ events: number; jobs: number; audit: number }>(
    sql`select (select count(*)::int from webhook_events) as events,
               (select count(*)::int from ${sql.identifier(JOB_SCHEMA)}.job) as jobs,
               (select count(*)::int from audit_log) as audit`,
  );
  if (row === undefined) throw new Error("no counts");
  return row;
}

function lastRejection() {
  return lastAuditEntry(t, "webhook.rejected");
}

describe("accepted deliveries, one per provider", () => {
  it("GitHub (cloud and GHES): stored once with its installation's connection, job queued", async () => {
    for (const [target, installation] of [
      [github, 4242],
      [ghes, 77],
    ] as const) {
      const delivery = randomUUID();
      const request = githubRequest(
        "pull_request",
        { action: "opened", installation: { id: installation }, number: 7 },
        { delivery },
      );
      const accepted = await post(target.targetKey, request.body, request.headers);
      expect(accepted.status, target.variantId).toBe(202);
      expect(accepted.body).toEqual({ id: expect.stringMatching(/^whe_/), duplicate: false });

      const [event] = (await eventsOf(target)).filter((e) => e.externalDeliveryId === delivery);
      expect(event).toMatchObject({
        id: accepted.body.id,
        organizationId,
        eventType: "github.pull_request.opened",
        externalSubjectId: String(installation),
        status: "received",
        payload: { action: "opened", installation: { id: installation }, number: 7 },
      });
      expect(event?.rawBody?.toString("utf8")).toBe(request.body);
      // The allow-list: identifying headers kept, the signature not.
      expect(event?.headers).toMatchObject({
        "x-github-event": "pull_request",
        "x-github-delivery": delivery,
      });
      expect(event?.headers).not.toHaveProperty("x-hub-signature-256");
      expect(await jobsFor(accepted.body.id)).toHaveLength(1);
    }
  });

  it("stores the payload whether the body is its compact JSON, pretty-printed or form-encoded", async () => {
    // A body that is byte for byte the payload's JSON is stored once (the payload read from it);
    // every other shape stores the payload itself as well.
    // Escapes, a pair of surrogates written as UTF-8, and spaces inside strings: a compact body is
    // stored byte for byte as it came (it travels to PostgreSQL as a JSON value, not in base64).
    const payload = {
      action: "opened",
      installation: { id: 4242 },
      title: 'café ☕ 🙂 "quoted" back\\slash\ttab\nline </script> \u001f',
      n: [1, 2, -0.5, 1e21],
      nested: { empty: {}, list: [], yes: true, no: false, none: null },
    };
    const compact = JSON.stringify(payload);
    const bodies: [string, string][] = [
      ["application/json", compact],
      ["application/json", JSON.stringify(payload, null, 2)],
      ["application/x-www-form-urlencoded", new URLSearchParams({ payload: compact }).toString()],
    ];
    for (const [contentType, body] of bodies) {
      const delivery = randomUUID();
      const signature = createHmac("sha256", GITHUB_SECRET).update(body).digest("hex");
      const accepted = await post(github.targetKey, body, {
        "content-type": contentType,
        "x-github-event": "issues",
        "x-github-delivery": delivery,
        "x-hub-signature-256": `sha256=${signature}`,
      });
      expect(accepted.status, body).toBe(202);
      const [event] = await t.deps.database.db
        .select({
          rawBody: webhookEvents.rawBody,
          payload: webhookEventPayload,
          column: webhookEvents.payload,
          payloadInBody: webhookEvents.payloadInBody,
        })
        .from(webhookEvents)
        .where(eq(webhookEvents.externalDeliveryId, delivery));
      expect(event?.payload, body).toEqual(payload);
      expect(event?.rawBody?.toString("utf8"), body).toBe(body);
      // Stored once when the body is the payload's JSON, not as a second copy.
      const once = body === compact;
      expect(event?.payloadInBody, body).toBe(once);
      if (once) expect(event?.column, body).toBeNull();
      else expect(event?.column, body).toEqual(payload);
    }
  });

  it("GitHub ping and Slack url_verification are answered at once once verified, storing nothing", async () => {
    const before = await countRows();
    const ping = githubRequest("ping", { zen: "Keep it logically awesome.", hook_id: 1 });
    const pong = await post(github.targetKey, ping.body, ping.headers);
    expect(pong.status).toBe(200);

    const challenge = slackRequest({ type: "url_verification", challenge: "c-3f9a", token: "x" });
    const echoed = await post(slack.targetKey, challenge.body, challenge.headers);
    expect(echoed.status).toBe(200);
    expect(echoed.text).toBe("c-3f9a");

    const after = await countRows();
    expect({ events: after.events, jobs: after.jobs }).toEqual({
      events: before.events,
      jobs: before.jobs,
    });
  });

  it("Slack event_callback, Linear and http-api deliveries are stored and queued", async () => {
    const slackEvent = slackRequest(
      {
        type: "event_callback",
        team_id: "T0001",
        event_id: "Ev0001",
        event_time: 1_700_000_000,
        event: { type: "app_mention", text: "hi" },
      },
      { retry: 1 },
    );
    const linearEvent = linearRequest({
      type: "Issue",
      action: "create",
      organizationId: "lin-org-1",
      data: { id: "i1" },
    });
    const standardEvent = standardRequest({ type: "invoice.paid", data: { id: "in_1" } });
    for (const [target, request, type] of [
      [slack, slackEvent, "slack.app_mention"],
      [linear, linearEvent, "linear.issue.create"],
      [httpApi, standardEvent, "http-api.invoice.paid"],
    ] as const) {
      const accepted = await post(target.targetKey, request.body, request.headers);
      expect(accepted.status, target.variantId).toBe(202);
      const [event] = (await eventsOf(target)).filter((e) => e.id === accepted.body.id);
      expect(event, target.variantId).toMatchObject({
        organizationId,
        eventType: type,
        status: "received",
      });
      expect(await jobsFor(accepted.body.id)).toHaveLength(1);
    }
    const [stored] = (await eventsOf(slack)).filter((e) => e.externalDeliveryId === "Ev0001");
    expect(stored?.providerRetry).toBe(1);
  });

  it("keeps an event whose connection cannot be resolved as unassigned, with no job", async () => {
    const request = githubRequest("issues", {
      action: "opened",
      installation: { id: 999_999 },
    });
    const accepted = await post(github.targetKey, request.body, request.headers);
    expect(accepted.status).toBe(202);
    const [event] = (await eventsOf(github)).filter((e) => e.id === accepted.body.id);
    expect(event).toMatchObject({ status: "unassigned", organizationId: null, connectionId: null });
    expect(await jobsFor(accepted.body.id)).toHaveLength(0);
  });
});

describe("duplicates", () => {
  it("answers a redelivered id with duplicate: true, storing and queueing nothing more", async () => {
    const delivery = randomUUID();
    const request = githubRequest(
      "push",
      { ref: "refs/heads/main", installation: { id: 4242 } },
      { delivery },
    );
    const first = await post(github.targetKey, request.body, request.headers);
    const second = await post(github.targetKey, request.body, request.headers);
    expect(second).toMatchObject({ status: 202, body: { id: first.body.id, duplicate: true } });
    expect((await eventsOf(github)).filter((e) => e.externalDeliveryId === delivery)).toHaveLength(
      1,
    );
    expect(await jobsFor(first.body.id)).toHaveLength(1);
  });

  it("stores 50 concurrent posts of one delivery id as one event with one job", async () => {
    const delivery = randomUUID();
    const request = githubRequest(
      "push",
      { ref: "refs/heads/x", installation: { id: 4242 } },
      { delivery },
    );
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => post(github.targetKey, request.body, request.headers)),
    );
    expect(answers.every((a) => a.status === 202)).toBe(true);
    expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);
    expect(answers.filter((a) => a.body.duplicate === false)).toHaveLength(1);
    const stored = (await eventsOf(github)).filter((e) => e.externalDeliveryId === delivery);
    expect(stored).toHaveLength(1);
    expect(await jobsFor(stored[0]?.id ?? "")).toHaveLength(1);
  });

  it("queues a delivery again when its first processing failed", async () => {
    const delivery = randomUUID();
    const request = githubRequest("push", { installation: { id: 4242 } }, { delivery });
    const first = await post(github.targetKey, request.body, request.headers);
    const db = t.deps.database.db;
    // The first job ran and gave up: gone from the queue, the event marked failed.
    await db.execute(
      sql`delete from ${sql.identifier(JOB_SCHEMA)}.job where data->>'eventId' = ${first.body.id}`,
    );
    await db
      .update(webhookEvents)
      .set({ status: "failed", lastError: "boom" })
      .where(eq(webhookEvents.id, first.body.id));
    const again = await post(github.targetKey, request.body, request.headers);
    expect(again.body).toEqual({ id: first.body.id, duplicate: true });
    expect(await jobsFor(first.body.id)).toHaveLength(1);
    const [event] = await db
      .select()
      .from(webhookEvents)
      .where(eq(webhookEvents.id, first.body.id));
    expect(event?.status).toBe("received");
  });
});

describe("refusals store nothing but an audit entry (SPEC §10)", () => {
  async function expectRefused(
    send: () => Promise<Post>,
    status: number,
    code: string,
    reason: string,
  ) {
    const before = await countRows();
    const answer = await send();
    expect(answer.status).toBe(status);
    expect(answer.body?.error?.code).toBe(code);
    const after = await countRows();
    expect(after.events).toBe(before.events);
    expect(after.jobs).toBe(before.jobs);
    expect(after.audit).toBe(before.audit + 1);
    expect((await lastRejection())?.details).toMatchObject({ status, code, reason });
  }

  it("413 for a body over the limit, before it is read", async () => {
    const big = "x".repeat(BODY_LIMIT + 1);
    await expectRefused(
      () => post(github.targetKey, big, githubRequest("push", {}).headers),
      413,
      "payload_too_large",
      "body_too_large",
    );
  });

  it("401 for a bad or missing signature, with any provider", async () => {
    const forged = githubRequest("push", { installation: { id: 4242 } }, { secret: "guess" });
    await expectRefused(
      () => post(github.targetKey, forged.body, forged.headers),
      401,
      "invalid_signature",
      "bad_signature",
    );
    const unsigned = githubRequest("push", {});
    const { "x-hub-signature-256": _, ...withoutSignature } = unsigned.headers;
    await expectRefused(
      () => post(github.targetKey, unsigned.body, withoutSignature),
      401,
      "invalid_signature",
      "missing_signature",
    );
    const tampered = linearRequest({ type: "Issue", action: "create" });
    await expectRefused(
      () => post(linear.targetKey, tampered.body.replace("Issue", "Issuf"), tampered.headers),
      401,
      "invalid_signature",
      "bad_signature",
    );
  });

  it("401 for a stale timestamp (Slack 5 min, Linear 60 s, Standard Webhooks 5 min)", async () => {
    const old = Math.floor(Date.now() / 1000) - 600;
    const slackOld = slackRequest(
      { type: "event_callback", event_id: "Ev-old" },
      { timestamp: old },
    );
    await expectRefused(
      () => post(slack.targetKey, slackOld.body, slackOld.headers),
      401,
      "stale_timestamp",
      "stale_timestamp",
    );
    const linearOld = linearRequest({
      type: "Issue",
      action: "create",
      webhookTimestamp: Date.now() - 120_000,
    });
    await expectRefused(
      () => post(linear.targetKey, linearOld.body, linearOld.headers),
      401,
      "stale_timestamp",
      "stale_timestamp",
    );
    const standardOld = standardRequest({ type: "x" }, { timestamp: old });
    await expectRefused(
      () => post(httpApi.targetKey, standardOld.body, standardOld.headers),
      401,
      "stale_timestamp",
      "stale_timestamp",
    );
  });

  it("404 for an unknown or disabled target, or one whose definition has no webhooks", async () => {
    const request = githubRequest("push", {});
    await expectRefused(
      () => post("no-such-target", request.body, request.headers),
      404,
      "not_found",
      "unknown_target",
    );
    await expectRefused(
      () => post(disabled.targetKey, request.body, request.headers),
      404,
      "not_found",
      "unknown_target",
    );
    const openai = await seedTarget(t.deps.database.db, t.deps, { variantId: "openai" });
    await expectRefused(
      () => post(openai.targetKey, request.body, request.headers),
      404,
      "not_found",
      "unknown_target",
    );
  });

  it("400 for a signed but malformed delivery", async () => {
    const body = "not json";
    const signature = createHmac("sha256", GITHUB_SECRET).update(body).digest("hex");
    await expectRefused(
      () =>
        post(github.targetKey, body, {
          "x-github-event": "push",
          "x-github-delivery": randomUUID(),
          "x-hub-signature-256": `sha256=${signature}`,
        }),
      400,
      "invalid_webhook",
      "malformed",
    );
  });

  it("gives a stranger the same answer whether or not an installation is connected", async () => {
    const connected = githubRequest("push", { installation: { id: 4242 } }, { secret: "guess" });
    const unknown = githubRequest("push", { installation: { id: 31337 } }, { secret: "guess" });
    const a = await post(github.targetKey, connected.body, connected.headers);
    const b = await post(github.targetKey, unknown.body, unknown.headers);
    const strip = (p: Post) => ({
      status: p.status,
      code: p.body.error.code,
      m: p.body.error.message,
    });
    expect(strip(a)).toEqual(strip(b));
  });
});

/**
 * Through Node's HTTP server, as deployed (`server.ts`): the route then reads the body and the
 * headers from Node's request itself (`raw-request.ts`), not through the web `Request` that
 * `app.request` builds.
 */
describe("through the HTTP server", () => {
  let server: Server;
  let url: string;
  beforeAll(async () => {
    server = createAdaptorServer({ fetch: t.app.fetch }) as Server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it("stores the body byte for byte and the allow-listed headers, repeated ones joined", async () => {
    const delivery = randomUUID();
    // Not ASCII, so a decoding or re-encoding step would show.
    const request = githubRequest(
      "issues",
      { action: "opened", installation: { id: 4242 }, title: "café ☕ — naïve" },
      { delivery },
    );
    const response = await fetch(`${url}/p/integration/webhooks/${github.targetKey}`, {
      method: "POST",
      headers: [...Object.entries(request.headers), ["user-agent", "second-agent"]],
      body: request.body,
    });
    expect(response.status).toBe(202);
    const accepted = (await response.json()) as { id: string; duplicate: boolean };
    expect(accepted.duplicate).toBe(false);
    const [event] = (await eventsOf(github)).filter((e) => e.externalDeliveryId === delivery);
    expect(event?.rawBody?.equals(Buffer.from(request.body, "utf8"))).toBe(true);
    expect(event?.headers).toMatchObject({
      "x-github-delivery": delivery,
      "user-agent": "GitHub-Hookshot/abc, second-agent",
    });
    expect(await jobsFor(accepted.id)).toHaveLength(1);
  });

  it("413 on a declared length over the limit, reading nothing, with an audit entry", async () => {
    const before = await countRows();
    const { status, body } = await new Promise<{ status: number; body: string }>(
      (resolve, reject) => {
        const outgoing = httpRequest(
          `${url}/p/integration/webhooks/${github.targetKey}`,
          {
            method: "POST",
            headers: {
              ...githubRequest("push", {}).headers,
              "content-length": String(BODY_LIMIT + 1),
            },
          },
          (incoming) => {
            const chunks: Buffer[] = [];
            incoming.on("data", (chunk: Buffer) => chunks.push(chunk));
            incoming.on("end", () => {
              resolve({ status: incoming.statusCode ?? 0, body: Buffer.concat(chunks).toString() });
              outgoing.destroy();
            });
          },
        );
        outgoing.on("error", reject);
        // Headers only: the answer comes without a byte of the declared body.
        outgoing.flushHeaders();
      },
    );
    expect(status).toBe(413);
    expect(JSON.parse(body).error.code).toBe("payload_too_large");
    const after = await countRows();
    expect(after.events).toBe(before.events);
    expect(after.audit).toBe(before.audit + 1);
    expect((await lastRejection())?.details).toMatchObject({ reason: "body_too_large" });
  });

  it("413 on a chunked body as soon as it passes the limit, before the rest is sent", async () => {
    const before = await countRows();
    const status = await new Promise<number>((resolve, reject) => {
      const headers: Record<string, string> = { ...githubRequest("push", {}).headers };
      const outgoing = httpRequest(`${url}/p/integration/webhooks/${github.targetKey}`, {
        method: "POST",
        headers: { ...headers, "transfer-encoding": "chunked" },
      });
      outgoing.on("response", (incoming) => {
        incoming.resume();
        resolve(incoming.statusCode ?? 0);
        outgoing.destroy();
      });
      outgoing.on("error", reject);
      // Over the limit, and the request never ends: only an answer before the end can come.
      outgoing.write("x".repeat(BODY_LIMIT + 1));
    });
    expect(status).toBe(413);
    const after = await countRows();
    expect(after.events).toBe(before.events);
    expect(after.audit).toBe(before.audit + 1);
  });
});

describe("atomicity", () => {
  it("leaves neither the event nor its job when the job insert fails, and fails it alone", async () => {
    const db = t.deps.database.db;
    // A fault between the event insert and the job insert: the job table refuses this one job.
    await db.execute(sql`
      create or replace function pg_temp_refuse_job() returns trigger language plpgsql as $f$
      begin
        if new.data->>'eventId' like 'whe_%' and exists (
          select 1 from webhook_events where id = new.data->>'eventId' and event_type = 'github.fault.injected'
        ) then raise exception 'injected fault'; end if;
        return new;
      end $f$`);
    const partition = await db.execute<{ partition_name: string }>(
      sql`select partition_name from ${sql.identifier(JOB_SCHEMA)}.queue where name = ${webhookProcessQueue.name}`,
    );
    const table = sql`${sql.identifier(JOB_SCHEMA)}.${sql.identifier(partition[0]?.partition_name ?? "")}`;
    await db.execute(
      sql`create trigger refuse_job before insert on ${table} for each row execute function pg_temp_refuse_job()`,
    );
    try {
      const delivery = randomUUID();
      const request = githubRequest(
        "fault",
        { action: "injected", installation: { id: 4242 } },
        { delivery },
      );
      // Concurrent deliveries share a transaction (group commit): the faulty one must fail
      // alone, its neighbours stored with their jobs.
      const neighbours = Array.from({ length: 12 }, () =>
        githubRequest("push", { ref: "refs/heads/n", installation: { id: 4242 } }),
      );
      // The first neighbour is written at once, alone; the others and the faulty one wait for
      // it and go together.
      const [first, answer, ...rest] = await Promise.all([
        ...neighbours.slice(0, 1).map((n) => post(github.targetKey, n.body, n.headers)),
        post(github.targetKey, request.body, request.headers),
        ...neighbours.slice(1).map((n) => post(github.targetKey, n.body, n.headers)),
      ]);
      const others = [first, ...rest].filter((other) => other !== undefined);
      expect(answer?.status).toBeGreaterThanOrEqual(500);
      expect(others.map((other) => other.status)).toEqual(others.map(() => 202));
      for (const other of others) expect(await jobsFor(other.body.id)).toHaveLength(1);
      const stored = await db
        .select()
        .from(webhookEvents)
        .where(
          and(
            eq(webhookEvents.targetId, github.id),
            eq(webhookEvents.externalDeliveryId, delivery),
          ),
        );
      expect(stored).toHaveLength(0);
    } finally {
      await db.execute(sql`drop trigger refuse_job on ${table}`);
      await db.execute(sql`drop function pg_temp_refuse_job()`);
    }
  });
});
