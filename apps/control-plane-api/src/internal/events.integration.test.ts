import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { getFreePort } from "@keyway/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { publishInvalidation } from "../events/invalidations";
import { createTestApp, type TestApp } from "../testing/test-app";

let t: TestApp;
let baseUrl: string;
let server: ReturnType<typeof serve>;

beforeAll(async () => {
  t = await createTestApp();
  const port = await getFreePort();
  await new Promise<void>((resolve) => {
    server = serve({ fetch: t.app.fetch, hostname: "127.0.0.1", port }, () => resolve());
  });
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    // Streams the tests aborted may still hold their sockets; don't wait for them to time out.
    if ("closeAllConnections" in server) server.closeAllConnections();
  });
  await t.close();
});

interface SseEvent {
  event: string;
  data: string;
}

/** Opens the event stream and yields parsed events as they arrive. */
async function openStream(token: string | undefined) {
  const abort = new AbortController();
  const response = await fetch(`${baseUrl}/internal/v1/events`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
    signal: abort.signal,
  });
  const queue: SseEvent[] = [];
  const waiters: (() => void)[] = [];
  let comments = 0;
  if (response.ok && response.body) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    void (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          buffer += value;
          let end = buffer.indexOf("\n\n");
          while (end >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            if (block.startsWith(":")) comments++;
            else {
              const fields = Object.fromEntries(
                block
                  .split("\n")
                  .map((line) => [
                    line.slice(0, line.indexOf(":")),
                    line.slice(line.indexOf(":") + 2),
                  ]),
              );
              queue.push({ event: fields.event ?? "message", data: fields.data ?? "" });
              for (const wake of waiters.splice(0)) wake();
            }
            end = buffer.indexOf("\n\n");
          }
        }
      } catch {
        // aborted by the test
      }
    })();
  }
  async function next(timeoutMs: number): Promise<SseEvent> {
    const until = Date.now() + timeoutMs;
    while (queue.length === 0) {
      const left = until - Date.now();
      if (left <= 0) throw new Error(`no event within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return queue.shift()!;
  }
  return { response, next, close: () => abort.abort(), comments: () => comments };
}

describe("GET /internal/v1/events", () => {
  it("streams ready, then invalidations committed by any transaction within a second", async () => {
    const stream = await openStream(await t.gatewayAssertion());
    try {
      expect(stream.response.status).toBe(200);
      expect(stream.response.headers.get("content-type")).toContain("text/event-stream");
      const ready = await stream.next(1000);
      expect(ready.event).toBe("ready");
      expect(JSON.parse(ready.data)).toEqual({ gatewayId: "gateway-test" });

      const published = performance.now();
      await t.deps.database.db.transaction(async (tx) => {
        await publishInvalidation(tx, { type: "session.revoked", sessionId: "sess_stream_test" });
        await publishInvalidation(tx, { type: "target.disabled", targetId: "tgt_stream_test" });
      });
      const first = await stream.next(1000);
      const second = await stream.next(1000);
      expect(performance.now() - published).toBeLessThan(1000);
      expect(first.event).toBe("invalidation");
      expect(JSON.parse(first.data)).toEqual({
        type: "session.revoked",
        sessionId: "sess_stream_test",
      });
      expect(JSON.parse(second.data)).toEqual({
        type: "target.disabled",
        targetId: "tgt_stream_test",
      });
    } finally {
      stream.close();
    }
  });

  it("delivers nothing from a transaction that rolls back", async () => {
    const stream = await openStream(await t.gatewayAssertion());
    try {
      await stream.next(1000);
      await t.deps.database.db
        .transaction(async (tx) => {
          await publishInvalidation(tx, { type: "session.revoked", sessionId: "sess_rolled_back" });
          throw new Error("roll back");
        })
        .catch(() => {});
      await t.deps.database.db.transaction((tx) =>
        publishInvalidation(tx, { type: "connection.revoked", connectionId: "conn_after" }),
      );
      expect(JSON.parse((await stream.next(1000)).data)).toEqual({
        type: "connection.revoked",
        connectionId: "conn_after",
      });
    } finally {
      stream.close();
    }
  });

  it("sends resync when its notification connection comes back, then delivers again", async () => {
    const stream = await openStream(await t.gatewayAssertion());
    try {
      expect((await stream.next(1000)).event).toBe("ready");
      // What a database restart or a network cut does to the LISTEN connection: notices
      // committed while it is gone are lost, so gateways must re-validate what they cached.
      const terminated = await t.deps.database.sql<{ terminated: boolean }[]>`
        select pg_terminate_backend(pid) as terminated from pg_stat_activity
        where datname = current_database() and query ilike 'listen %'`;
      expect(terminated.length).toBeGreaterThan(0);
      const resync = await stream.next(10_000);
      expect(resync.event).toBe("resync");
      await t.deps.database.db.transaction((tx) =>
        publishInvalidation(tx, { type: "connection.revoked", connectionId: "conn_after_resync" }),
      );
      expect(JSON.parse((await stream.next(2000)).data)).toEqual({
        type: "connection.revoked",
        connectionId: "conn_after_resync",
      });
    } finally {
      stream.close();
    }
  });

  it("refuses a missing, bad or replayed assertion with 401", async () => {
    const none = await openStream(undefined);
    expect(none.response.status).toBe(401);
    const bad = await openStream("not-a-jwt");
    expect(bad.response.status).toBe(401);
    const assertion = await t.gatewayAssertion();
    const first = await openStream(assertion);
    expect(first.response.status).toBe(200);
    first.close();
    const replay = await openStream(assertion);
    expect(replay.response.status).toBe(401);
    expect(await replay.response.json()).toMatchObject({ error: { code: "unauthorized" } });
  });
});
