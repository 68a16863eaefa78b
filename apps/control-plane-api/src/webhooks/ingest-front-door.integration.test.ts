import { createHmac, randomUUID } from "node:crypto";
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type RequestListener,
  type Server,
} from "node:http";
import type { AddressInfo } from "node:net";
import { getRequestListener } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiListener, createApp } from "../app";
import type { AppDeps } from "../deps";
import {
  type SeededTarget,
  seedConnection,
  seedOrganization,
  seedTarget,
} from "../internal/fixtures";
import { createApiMetrics } from "../metrics";
import { apiModules } from "../modules";
import { createTestApp, lastAuditEntry, type TestApp } from "../testing/test-app";
import { webhookIngest } from "./ingest-routes";

/**
 * The webhook route's front door (`ingest-front-door.ts`) answers what it takes exactly as the
 * hono route does, with what the app's middleware gives every request, and leaves the rest to
 * hono. Three servers on one app's dependencies: the API's real listener (front door, then
 * hono), hono alone (as the route was served before the front door), and the front door alone
 * (answering 599 to what it leaves to hono, so a test sees which requests it took).
 */

const SECRET = "gh-front-door-secret-31d7";
const BODY_LIMIT = 16 * 1024;
const DECLINED = 599;

let t: TestApp;
let github: SeededTarget;
let api: string;
let honoOnly: string;
let doorOnly: string;
const servers: Server[] = [];

async function listen(listener: RequestListener): Promise<string> {
  // Idle connections stay open through a test: one left stuck would stall the next request.
  const server = createServer({ keepAliveTimeout: 60_000 }, listener);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The three servers over `deps`. */
async function serversOver(deps: AppDeps) {
  const { frontDoor } = webhookIngest(deps);
  return {
    api: await listen(createApiListener(deps, apiModules).listener),
    honoOnly: await listen(getRequestListener(createApp(deps, apiModules).fetch)),
    doorOnly: await listen((incoming, outgoing) => {
      if (frontDoor(incoming, outgoing)) return;
      incoming.resume();
      outgoing.writeHead(DECLINED).end();
    }),
  };
}

beforeAll(async () => {
  t = await createTestApp({ settings: { webhookBodyLimitBytes: BODY_LIMIT } });
  const db = t.deps.database.db;
  github = await seedTarget(db, t.deps, {
    variantId: "github-cloud",
    secrets: { webhookSecret: SECRET },
  });
  await seedConnection(db, t.deps, {
    organizationId: await seedOrganization(db, t.clock),
    target: github,
    methodId: "github-app",
    externalSubjectId: "4242",
  });
  ({ api, honoOnly, doorOnly } = await serversOver(t.deps));
});

afterAll(async () => {
  for (const server of servers) server.closeAllConnections();
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  await t.close();
});

interface Sent {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  agent?: Agent;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  reusedSocket: boolean;
}

function send(base: string, sent: Sent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(base);
    const outgoing = httpRequest(
      {
        hostname,
        port,
        // As written: a URL string would have its dot segments resolved by the client.
        path: sent.path ?? `/p/integration/webhooks/${github.targetKey}`,
        method: sent.method ?? "POST",
        headers: sent.headers ?? {},
        ...(sent.agent ? { agent: sent.agent } : {}),
      },
      (incoming) => {
        const chunks: Buffer[] = [];
        incoming.on("data", (chunk: Buffer) => chunks.push(chunk));
        incoming.on("end", () =>
          resolve({
            status: incoming.statusCode ?? 0,
            headers: incoming.headers,
            body: Buffer.concat(chunks).toString("utf8"),
            reusedSocket: outgoing.reusedSocket,
          }),
        );
      },
    );
    outgoing.on("error", reject);
    outgoing.end(sent.body);
  });
}

function signed(event: string, body: string, secret = SECRET): Sent {
  return {
    body,
    headers: {
      "content-type": "application/json",
      "x-github-event": event,
      "x-github-delivery": randomUUID(),
      "x-hub-signature-256": `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`,
      "user-agent": "GitHub-Hookshot/front-door",
    },
  };
}

const issueOpened = () =>
  signed("issues", JSON.stringify({ action: "opened", installation: { id: 4242 } }));

/**
 * An answer as two servers can agree on it: the date, Node's connection headers and the
 * generated ids (request id, event id: each the same length on both) aside.
 */
function comparable(answer: Answer) {
  const { date, connection, "keep-alive": keepAlive, ...headers } = answer.headers;
  if (typeof headers["x-request-id"] === "string") headers["x-request-id"] = "(request id)";
  return {
    status: answer.status,
    headers,
    body: answer.body.replace(/"(id|requestId)":"[^"]+"/g, '"$1":"(id)"'),
  };
}

function lastRejection() {
  return lastAuditEntry(t, "webhook.rejected");
}

describe("the front door answers as the hono route does", () => {
  const cases: [string, () => Sent, number][] = [
    ["a verified event", issueOpened, 202],
    [
      "GitHub's ping",
      () => signed("ping", JSON.stringify({ zen: "Keep it logically awesome." })),
      200,
    ],
    ["a bad signature", () => signed("issues", "{}", "not-the-secret"), 401],
    ["a signed but malformed body", () => signed("issues", "{not json"), 400],
    [
      "an unknown target",
      () => ({ ...issueOpened(), path: "/p/integration/webhooks/no-such-target" }),
      404,
    ],
    [
      "a body over the limit",
      () => signed("issues", JSON.stringify({ padding: "x".repeat(BODY_LIMIT) })),
      413,
    ],
    [
      "a query string",
      () => ({ ...issueOpened(), path: `/p/integration/webhooks/${github.targetKey}?a=1` }),
      202,
    ],
  ];

  it.each(cases)("%s", async (_, request, status) => {
    const door = await send(doorOnly, request());
    const hono = await send(honoOnly, request());
    expect(door.status).toBe(status);
    expect(comparable(door)).toEqual(comparable(hono));
    expect(door.headers["content-length"]).toBe(String(Buffer.byteLength(door.body)));
    expect(door.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("answers a redelivery as a duplicate of the first event", async () => {
    const request = issueOpened();
    const first = JSON.parse((await send(doorOnly, request)).body);
    const again = await send(doorOnly, request);
    expect(again.status).toBe(202);
    expect(JSON.parse(again.body)).toEqual({ id: first.id, duplicate: true });
  });

  it("413 before the body is read, with an audit entry, and the connection serves the next request", async () => {
    for (const base of [doorOnly, honoOnly]) {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const request = signed("issues", JSON.stringify({ padding: "x".repeat(1024 * 1024) }));
      // Chunked: refused as it streams in, past the limit, so the rest is left unread.
      const refused = await send(base, {
        ...request,
        headers: { ...request.headers, "transfer-encoding": "chunked" },
        agent,
      });
      expect(refused.status).toBe(413);
      expect(JSON.parse(refused.body).error.code).toBe("payload_too_large");
      expect((await lastRejection())?.details).toMatchObject({ reason: "body_too_large" });
      const next = await send(base, { ...issueOpened(), agent });
      expect(next.status).toBe(202);
      expect(next.reusedSocket).toBe(true);
      agent.destroy();
    }
  });

  it("503 with Retry-After when the request's deadline passes", async () => {
    const hurried = await serversOver({
      ...t.deps,
      settings: { ...t.deps.settings, requestTimeoutMs: 0 },
    });
    const door = await send(hurried.doorOnly, issueOpened());
    const hono = await send(hurried.honoOnly, issueOpened());
    expect(door.status).toBe(503);
    expect(door.headers["retry-after"]).toBe("2");
    expect(JSON.parse(door.body).error.code).toBe("service_unavailable");
    expect(comparable(door)).toEqual(comparable(hono));
  });
});

describe("what every request gets from the app's middleware", () => {
  it("keeps the caller's request id and trace and writes its access-log line", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const traceparent = `00-${traceId}-00f067aa0ba902b7-01`;
    const lines = t.logger.lines;
    const answers: Answer[] = [];
    for (const [base, requestId] of [
      [doorOnly, "front-door-request-1"],
      [honoOnly, "hono-request-1"],
    ] as const) {
      const request = issueOpened();
      const answer = await send(base, {
        ...request,
        headers: { ...request.headers, "x-request-id": requestId, traceparent },
      });
      expect(answer.status).toBe(202);
      expect(answer.headers["x-request-id"]).toBe(requestId);
      answers.push(answer);
    }
    const accessLine = (requestId: string) => {
      const line = lines.map((l) => JSON.parse(l)).find((l) => l.requestId === requestId);
      expect(line).toBeDefined();
      const { requestId: _, durationMs, time, ...rest } = line;
      expect(typeof durationMs).toBe("number");
      return rest;
    };
    expect(accessLine("front-door-request-1")).toEqual({
      level: "info",
      msg: "request",
      method: "POST",
      path: `/p/integration/webhooks/${github.targetKey}`,
      status: 202,
      traceId,
    });
    expect(accessLine("front-door-request-1")).toEqual(accessLine("hono-request-1"));
  });

  it("counts its requests by route pattern and status, with their latency", async () => {
    // A registry of its own, so only the front door's requests are in it.
    const metrics = createApiMetrics();
    const alone = await serversOver({ ...t.deps, metrics });
    expect((await send(alone.doorOnly, issueOpened())).status).toBe(202);
    expect((await send(alone.doorOnly, signed("issues", "{}", "not-the-secret"))).status).toBe(401);
    const text = await metrics.registry.render();
    const route = 'route="/p/integration/webhooks/:targetKey"';
    expect(text).toContain(`keyway_api_requests_total{method="POST",${route},status="202"} 1`);
    expect(text).toContain(`keyway_api_requests_total{method="POST",${route},status="401"} 1`);
    expect(text).toContain(`keyway_api_request_duration_seconds_count{method="POST",${route}} 2`);
    expect(text).not.toContain(github.targetKey);
  });

  it("the real listener serves the route through the front door with the same answers", async () => {
    const answer = await send(api, issueOpened());
    expect(answer.status).toBe(202);
    expect(comparable(answer)).toEqual(comparable(await send(doorOnly, issueOpened())));
  });
});

describe("what the front door leaves to hono", () => {
  const key = () => github.targetKey;
  const cases: [string, () => Sent, number][] = [
    ["GET on the route", () => ({ method: "GET" }), 404],
    ["HEAD on the route", () => ({ method: "HEAD" }), 404],
    ["PUT on the route", () => ({ ...issueOpened(), method: "PUT" }), 404],
    [
      "a percent-encoded target key",
      () => ({
        ...issueOpened(),
        path: `/p/integration/webhooks/${encodeURIComponent(key()).replace(/^./, (c) => `%${c.charCodeAt(0).toString(16)}`)}`,
      }),
      202,
    ],
    [
      "a trailing slash",
      () => ({ ...issueOpened(), path: `/p/integration/webhooks/${key()}/` }),
      404,
    ],
    ["no target key", () => ({ ...issueOpened(), path: "/p/integration/webhooks/" }), 404],
    ["a dot segment", () => ({ ...issueOpened(), path: "/p/integration/webhooks/.." }), 404],
    [
      "a key over 64 characters",
      () => ({ ...issueOpened(), path: `/p/integration/webhooks/${"k".repeat(65)}` }),
      400,
    ],
    ["another path under /p/", () => ({ ...issueOpened(), path: "/p/integration/other" }), 404],
    [
      "a host the adapter refuses",
      () => ({ ...issueOpened(), headers: { ...issueOpened().headers, host: "127.1" } }),
      400,
    ],
  ];

  it.each(cases)("%s", async (_, request, status) => {
    expect((await send(doorOnly, request())).status).toBe(DECLINED);
    const served = await send(api, request());
    expect(served.status).toBe(status);
    expect(comparable(served)).toEqual(comparable(await send(honoOnly, request())));
  });
});
