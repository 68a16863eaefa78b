import { createMemoryLogger, createMetricsRegistry } from "@keyway/observability";
import { describe, expect, it } from "vitest";
import { createGatewayMetrics } from "../gateway-metrics";
import { createRecord, type ExchangeRecord } from "./record";

function exchange(overrides: Partial<ExchangeRecord>): ExchangeRecord {
  return {
    kind: "http",
    startedAt: performance.now(),
    traceId: "0af7651916cd43dd8448eb211c80319c",
    sessionId: "sess_1",
    routeId: "r1",
    bindingId: "b1",
    upstream: "https://api.example.test",
    method: "GET",
    host: "api.example.test",
    status: 200,
    bytesIn: 10,
    bytesOut: 20,
    outcome: "forwarded",
    ...overrides,
  };
}

describe("recordExchange", () => {
  it("writes one JSON line with the request's facts and counts it", async () => {
    const logger = createMemoryLogger();
    const registry = createMetricsRegistry();
    const record = createRecord({ logger, metrics: createGatewayMetrics(registry) });
    record(exchange({}));
    record(
      exchange({
        routeId: undefined,
        bindingId: undefined,
        upstream: undefined,
        status: 502,
        outcome: "upstream_unreachable",
      }),
    );
    record(
      exchange({
        kind: "tunnel",
        method: "CONNECT",
        routeId: undefined,
        upstream: undefined,
        outcome: "spliced",
      }),
    );
    record(
      exchange({ routeId: undefined, upstream: undefined, status: 403, outcome: "policy_denied" }),
    );

    expect(logger.lines).toHaveLength(4);
    const line = JSON.parse(logger.lines[0] ?? "{}");
    expect(Object.keys(line).sort()).toEqual(
      [
        "bindingId",
        "bytesIn",
        "bytesOut",
        "durationMs",
        "host",
        "kind",
        "level",
        "method",
        "msg",
        "outcome",
        "routeId",
        "sessionId",
        "status",
        "time",
        "traceId",
      ].sort(),
    );
    expect(line).toMatchObject({
      sessionId: "sess_1",
      routeId: "r1",
      status: 200,
      bytesIn: 10,
      bytesOut: 20,
    });

    const text = await registry.render();
    expect(text).toContain(
      'keyway_gateway_requests_total{upstream="https://api.example.test",status="200"} 1',
    );
    expect(text).toContain('keyway_gateway_requests_total{upstream="unmanaged",status="502"} 1');
    expect(text).toContain(
      'keyway_gateway_upstream_errors_total{upstream="unmanaged",code="upstream_unreachable"} 1',
    );
    expect(text).toContain('keyway_gateway_tunnels_total{mode="spliced"} 1');
    expect(text).toContain('keyway_gateway_requests_total{upstream="none",status="403"} 1');
    expect(text).not.toContain("r1");
  });
});
