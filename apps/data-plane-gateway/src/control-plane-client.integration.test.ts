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
 * digest. The real control plane's answers are covered by `new-session.integration.test.ts`.
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
  body: { sessionIds?: string[]; plans?: string[] } | undefined;
}

/** A control plane answering liveness with `answer(body)` and plans by digest with `planById`. */
async function start(
  answer: (body: Seen["body"]) => { status: number; json: unknown },
  planById: unknown,
): Promise<Seen[]> {
  const seen: Seen[] = [];
  server = await startHttpServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString();
    const body = text === "" ? undefined : (JSON.parse(text) as Seen["body"]);
    seen.push({ path: req.url ?? "", body });
    const reply = req.url?.startsWith("/internal/v1/plans/")
      ? { status: 200, json: planById }
      : answer(body);
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
