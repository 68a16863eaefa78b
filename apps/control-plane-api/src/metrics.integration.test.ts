import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp } from "./testing/test-app";

/** `GET /metrics`: the control plane's Prometheus exposition (docs/operations.md lists it). */

let t: Awaited<ReturnType<typeof createTestApp>>;

beforeAll(async () => {
  t = await createTestApp();
});

afterAll(async () => {
  await t.close();
});

async function scrape(): Promise<string> {
  const response = await t.app.request("/metrics");
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toContain("text/plain");
  return response.text();
}

describe("GET /metrics", () => {
  it("counts requests by method, route pattern and status, with their latency", async () => {
    await t.app.request("/healthz");
    await t.app.request("/healthz");
    await t.app.request("/v1/connections/conn_doesnotexist", {
      headers: { authorization: `Bearer ${t.operatorToken}` },
    });
    const text = await scrape();
    expect(text).toContain(
      'keyway_api_requests_total{method="GET",route="/healthz",status="200"} 2',
    );
    // By pattern, never by the concrete path (a bounded label).
    expect(text).not.toContain("conn_doesnotexist");
    expect(text).toMatch(
      /keyway_api_request_duration_seconds_count\{method="GET",route="\/healthz"\} 2/,
    );
  });

  it("reports the database pool, the job queue depth and the process", async () => {
    // As `server.ts` does at start: the queues exist before anything is counted in them.
    await t.deps.jobs.prepare();
    const text = await scrape();
    expect(text).toContain("keyway_db_pool_size 5");
    // The scrape's own query holds one connection while it reads pg_stat_activity.
    expect(text).toMatch(/keyway_db_connections\{state="active"\} [1-9]/);
    expect(text).toContain('keyway_job_queue_depth{queue="webhook-deliver"} 0');
    expect(text).toContain("# TYPE nodejs_eventloop_lag_seconds gauge");
  });
});
