import { describe, expect, it } from "vitest";
import { createMetricsRegistry } from "./metrics";

describe("createMetricsRegistry", () => {
  it("renders counters and cumulative histograms in the text exposition format", () => {
    const registry = createMetricsRegistry();
    const requests = registry.counter("t_requests_total", "Requests.", ["route", "status"]);
    const latency = registry.histogram("t_seconds", "Latency.", [0.1, 1], ["route"]);
    requests.inc("r1", "200");
    requests.inc("r1", "200");
    requests.add(3, 'we"ird\\', "502");
    latency.observe(0.05, "r1");
    latency.observe(0.5, "r1");
    latency.observe(5, "r1");
    expect(registry.render()).toBe(
      [
        "# HELP t_requests_total Requests.",
        "# TYPE t_requests_total counter",
        't_requests_total{route="r1",status="200"} 2',
        't_requests_total{route="we\\"ird\\\\",status="502"} 3',
        "# HELP t_seconds Latency.",
        "# TYPE t_seconds histogram",
        't_seconds_bucket{route="r1",le="0.1"} 1',
        't_seconds_bucket{route="r1",le="1"} 2',
        't_seconds_bucket{route="r1",le="+Inf"} 3',
        't_seconds_sum{route="r1"} 5.55',
        't_seconds_count{route="r1"} 3',
        "",
      ].join("\n"),
    );
  });

  it("supports unlabelled metrics and refuses duplicates", () => {
    const registry = createMetricsRegistry();
    registry.counter("t_plain_total", "Plain.").inc();
    expect(registry.render()).toContain("t_plain_total 1\n");
    expect(() => registry.counter("t_plain_total", "again")).toThrow(TypeError);
  });
});

describe("bounded exposition", () => {
  it("keeps at most maxSeriesPerMetric label sets, counting later ones as _overflow", () => {
    const registry = createMetricsRegistry({ maxSeriesPerMetric: 2 });
    const requests = registry.counter("t_requests_total", "Requests.", ["upstream", "status"]);
    requests.inc("a", "200");
    requests.inc("b", "200");
    requests.inc("c", "200");
    requests.inc("d", "503");
    requests.inc("a", "200");
    expect(registry.render()).toBe(
      [
        "# HELP t_requests_total Requests.",
        "# TYPE t_requests_total counter",
        't_requests_total{upstream="a",status="200"} 2',
        't_requests_total{upstream="b",status="200"} 1',
        't_requests_total{upstream="_overflow",status="_overflow"} 2',
        "",
      ].join("\n"),
    );
  });

  it("renders gauges read at render time", () => {
    const registry = createMetricsRegistry();
    let bytes = 10;
    registry.gauge("t_cache_bytes", "Bytes.", () => bytes);
    bytes = 42;
    expect(registry.render()).toBe(
      ["# HELP t_cache_bytes Bytes.", "# TYPE t_cache_bytes gauge", "t_cache_bytes 42", ""].join(
        "\n",
      ),
    );
  });
});
