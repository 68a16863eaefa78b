import type { IncomingMessage, ServerResponse } from "node:http";
import { generateSigningKeyPair } from "@keyway/crypto";
import { type CompiledRuntimePlan, planDigest } from "@keyway/integrations-core";
import { createLogger } from "@keyway/observability";
import { type RunningServer, startHttpServer } from "@keyway/test-harness";
import { afterEach, expect, it } from "vitest";
import { type ControlPlaneClient, createControlPlaneClient } from "./control-plane-client";
import { testPlan, testRoute } from "./testing/fixtures";

/**
 * The control-plane client against control planes that answer the liveness-and-plan request
 * badly: one from before `plans` (a rolling upgrade) and one whose plan does not hash to its
 * digest; and one from before the batch resolution route. The real control plane's answers are covered by `new-session.integration.test.ts`.
 */

const quiet = createLogger({ level: "error", write: () => {} });
const clock = { now: () => new Date() };
const plan: CompiledRuntimePlan = testPlan([
  testRoute("r_a", "a.example.test", "https://a.example.test", { type: "header", name: "x-key" }),
]);
const digest = planDigest(plan);
const otherPlan = testPlan([
  testRoute("r_b", "b.example.test", "https://b.example.test", { type: "header", name: "x-key" }),
]);

let server: RunningServer | undefined;
let client: ControlPlaneClient | undefined;
afterEach(async () => {
  await client?.close();
  await server?.close();
});

interface Seen {
  path: string;
  body:
    | {
        sessionIds?: string[];
        plans?: string[];
        sessionId?: string;
        routeId?: string;
        items?: { sessionId: string; routeId: string; traceparent?: string }[];
      }
    | undefined;
  traceparent: string | undefined;
}

/** A control plane answering liveness with `answer(body)` and plans by digest with `planById`. */
async function start(
  answer: (body: Seen["body"], path: string) => { status: number; json: unknown },
  planById: unknown,
): Promise<Seen[]> {
  const seen: Seen[] = [];
  server = await startHttpServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString();
    const body = text === "" ? undefined : (JSON.parse(text) as Seen["body"]);
    const traceparent = req.headers.traceparent?.toString();
    seen.push({ path: req.url ?? "", body, traceparent });
    const reply = req.url?.startsWith("/internal/v1/plans/")
      ? { status: 200, json: planById }
      : answer(body, req.url ?? "");
    res.writeHead(reply.status, { "content-type": "application/json" });
    res.end(JSON.stringify(reply.json));
  });
  const key = await generateSigningKeyPair();
  client = createControlPlaneClient({
    baseUrl: server.url,
    identity: { gatewayId: "gw-test", privateJwk: key.privateJwk, kid: key.kid },
    audience: "test",
    clock,
    logger: quiet,
  });
  return seen;
}

const live = (body: Seen["body"]) =>
  (body?.sessionIds ?? []).map((sessionId) => ({ sessionId, live: true, expiresAt: null }));

it("asks without plans, and fetches them by digest, when the control plane refuses `plans`", async () => {
  const seen = await start(
    (body) =>
      body?.plans === undefined
        ? { status: 200, json: { sessions: live(body) } }
        : { status: 400, json: { error: { code: "invalid_request" } } },
    plan,
  );
  const answers = await client!.checkSessions(["sess_1"], [digest]);
  expect(answers).toEqual([{ sessionId: "sess_1", live: true, expiresAt: null }]);
  await expect(client!.fetchPlan(digest)).resolves.toEqual(plan);
  // And it does not offer plans again at once.
  await client!.checkSessions(["sess_2"], [digest]);
  expect(seen.map((s) => [s.path, s.body?.plans ?? null])).toEqual([
    ["/internal/v1/sessions/liveness", [digest]],
    ["/internal/v1/sessions/liveness", null],
    [`/internal/v1/plans/${digest}`, null],
    ["/internal/v1/sessions/liveness", null],
  ]);
});

it("refuses a plan sent with a liveness answer that does not match its digest", async () => {
  const seen = await start(
    (body) => ({
      status: 200,
      json: { sessions: live(body), plans: { [digest]: otherPlan } },
    }),
    otherPlan,
  );
  await client!.checkSessions(["sess_1"], [digest]);
  // Not kept: asked for by digest, and refused again since it still does not match.
  await expect(client!.fetchPlan(digest)).rejects.toMatchObject({ code: "digest_mismatch" });
  expect(seen.map((s) => s.path)).toEqual([
    "/internal/v1/sessions/liveness",
    `/internal/v1/plans/${digest}`,
  ]);
});

it("resolves one request each, for a while, when the control plane refuses the batch route", async () => {
  // A control plane from before `resolve-batch` (a rolling upgrade): its router answers 404.
  const seen = await start((body, path) => {
    if (path === "/internal/v1/credentials/resolve-batch") {
      return { status: 404, json: { error: { code: "not_found", message: "no such route" } } };
    }
    return body?.routeId === "r_refused"
      ? { status: 403, json: { error: { code: "route_not_in_plan" } } }
      : {
          status: 200,
          json: { value: `sk-${body?.routeId}`, expiresAt: null, credentialVersion: 1 },
        };
  }, plan);
  const traceparent = `00-${"1".repeat(32)}-${"2".repeat(16)}-01`;
  const outcomes = await Promise.allSettled([
    client!.resolveCredential({ sessionId: "sess_1", routeId: "r_a", traceparent }),
    client!.resolveCredential({ sessionId: "sess_1", routeId: "r_refused" }),
  ]);
  expect(outcomes[0]).toMatchObject({ status: "fulfilled", value: { value: "sk-r_a" } });
  expect(outcomes[1]).toMatchObject({
    status: "rejected",
    reason: { status: 403, code: "route_not_in_plan" },
  });
  // Later turns do not offer the batch again at once.
  await Promise.all([
    client!.resolveCredential({ sessionId: "sess_2", routeId: "r_a" }),
    client!.resolveCredential({ sessionId: "sess_2", routeId: "r_b" }),
  ]);
  expect(seen.map((s) => [s.path, s.body?.items?.length ?? s.body?.routeId])).toEqual([
    ["/internal/v1/credentials/resolve-batch", 2],
    ["/internal/v1/credentials/resolve", "r_a"],
    ["/internal/v1/credentials/resolve", "r_refused"],
    ["/internal/v1/credentials/resolve", "r_a"],
    ["/internal/v1/credentials/resolve", "r_b"],
  ]);
  // The single route carries the trace in its header, as before batches.
  expect(seen[1]?.traceparent).toBe(traceparent);
});

it("sends the resolutions asked while a request is under way together in the next", async () => {
  // The control plane holds its answers until released, as one busy with a storm would.
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const arrived: string[] = [];
  server = await startHttpServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString()) as {
      routeId?: string;
      items?: { routeId: string }[];
    };
    const routes = body.items?.map((item) => item.routeId) ?? [body.routeId ?? ""];
    arrived.push(routes.join(","));
    await held;
    const credential = (routeId: string) => ({
      value: `sk-${routeId}`,
      expiresAt: null,
      credentialVersion: 1,
    });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify(
        body.items === undefined
          ? credential(routes[0] ?? "")
          : { results: routes.map((routeId) => ({ status: 200, ...credential(routeId) })) },
      ),
    );
  });
  const key = await generateSigningKeyPair();
  client = createControlPlaneClient({
    baseUrl: server.url,
    identity: { gatewayId: "gw-test", privateJwk: key.privateJwk, kid: key.kid },
    audience: "test",
    clock,
    logger: quiet,
    // Held until answered, however slow this machine is.
    resolutionSlotMs: 60_000,
  });
  const ask = (routeId: string) => client!.resolveCredential({ sessionId: "sess_1", routeId });
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  const answers = [ask("r_1")];
  while (arrived.length < 1) await turn();
  // The slot is taken: these three turns' resolutions wait, and then travel together.
  answers.push(ask("r_2"));
  await turn();
  answers.push(ask("r_3"));
  await turn();
  answers.push(ask("r_4"));
  await turn();
  expect(arrived).toEqual(["r_1"]);
  release();
  const values = await Promise.all(answers);
  expect(values.map((v) => v.value)).toEqual(["sk-r_1", "sk-r_2", "sk-r_3", "sk-r_4"]);
  expect(arrived).toEqual(["r_1", "r_2,r_3,r_4"]);
});

it("does not hold resolutions back behind requests that wait on a slow provider", async () => {
  // r_slow_* never get an answer until the end (a provider timing out); r_fast does at once.
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  server = await startHttpServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const { routeId } = JSON.parse(Buffer.concat(chunks).toString()) as { routeId: string };
    if (routeId.startsWith("r_slow")) await held;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ value: `sk-${routeId}`, expiresAt: null, credentialVersion: 1 }));
  });
  const key = await generateSigningKeyPair();
  client = createControlPlaneClient({
    baseUrl: server.url,
    identity: { gatewayId: "gw-test", privateJwk: key.privateJwk, kid: key.kid },
    audience: "test",
    clock,
    logger: quiet,
    resolutionSlotMs: 1,
  });
  const ask = (routeId: string) => client!.resolveCredential({ sessionId: "sess_1", routeId });
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  const slow = ask("r_slow");
  await turn();
  // The slot is held by an unanswered request: its time up, this one is sent anyway.
  expect((await ask("r_fast")).value).toBe("sk-r_fast");
  release();
  expect((await slow).value).toBe("sk-r_slow");
});

it("refuses a liveness answer of any other shape, and keeps only the three members of each", async () => {
  const answers: unknown[] = [
    {},
    { sessions: "sess_1" },
    { sessions: [null] },
    { sessions: [{ live: true, expiresAt: null }] },
    { sessions: [{ sessionId: 1, live: true, expiresAt: null }] },
    { sessions: [{ sessionId: "sess_1", live: "yes", expiresAt: null }] },
    { sessions: [{ sessionId: "sess_1", live: true }] },
    { sessions: [{ sessionId: "sess_1", live: true, expiresAt: 1_900_000_000 }] },
    { sessions: [], plans: [plan] },
    { sessions: [], plans: "none" },
    { sessions: [], plans: null },
    [],
    null,
  ];
  let next = 0;
  await start(() => ({ status: 200, json: answers[next++] }), plan);
  for (const answer of answers) {
    await expect(client!.checkSessions(["sess_1"]), JSON.stringify(answer)).rejects.toMatchObject({
      code: "bad_response",
    });
  }
  // A well-formed answer passes, its sessions with their three members and nothing more.
  answers.push({
    sessions: [
      { sessionId: "sess_1", live: true, expiresAt: "2030-01-01T00:00:00Z", extra: "x" },
      { sessionId: "sess_2", live: false, expiresAt: null },
    ],
    plans: {},
    more: 1,
  });
  await expect(client!.checkSessions(["sess_1", "sess_2"])).resolves.toStrictEqual([
    { sessionId: "sess_1", live: true, expiresAt: "2030-01-01T00:00:00Z" },
    { sessionId: "sess_2", live: false, expiresAt: null },
  ]);
});
