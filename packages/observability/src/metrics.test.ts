import { Histogram as PromHistogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createMetricsRegistry } from "./metrics";

const bare = (options: { maxSeriesPerMetric?: number } = {}) =>
  createMetricsRegistry({ ...options, defaultMetrics: false });

describe("createMetricsRegistry", () => {
  it("renders counters and cumulative histograms in the text exposition format", async () => {
    const registry = bare();
    const requests = registry.counter("t_requests_total", "Requests.", ["route", "status"]);
    const latency = registry.histogram("t_seconds", "Latency.", [0.1, 1], ["route"]);
    requests.inc("r1", "200");
    requests.inc("r1", "200");
    requests.add(3, 'we"ird\\', "502");
    latency.observe(0.05, "r1");
    latency.observe(0.5, "r1");
    latency.observe(5, "r1");
    expect(await registry.render()).toBe(
      [
        "# HELP t_requests_total Requests.",
        "# TYPE t_requests_total counter",
        't_requests_total{route="r1",status="200"} 2',
        't_requests_total{route="we\\"ird\\\\",status="502"} 3',
        "",
        "# HELP t_seconds Latency.",
        "# TYPE t_seconds histogram",
        't_seconds_bucket{le="0.1",route="r1"} 1',
        't_seconds_bucket{le="1",route="r1"} 2',
        't_seconds_bucket{le="+Inf",route="r1"} 3',
        't_seconds_sum{route="r1"} 5.55',
        't_seconds_count{route="r1"} 3',
        "",
      ].join("\n"),
    );
  });

  it("renders histograms exactly as prom-client's Histogram does", async () => {
    const registry = bare();
    const reference = new Registry();
    const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 60];
    const ours = registry.histogram("t_seconds", "Latency.", buckets, ["upstream", "code"]);
    const theirs = new PromHistogram({
      name: "t_seconds",
      help: "Latency.",
      buckets,
      labelNames: ["upstream", "code"],
      registers: [reference],
    });
    const plainOurs = registry.histogram("t_plain_seconds", "Plain.", [1, 2]);
    const plainTheirs = new PromHistogram({
      name: "t_plain_seconds",
      help: "Plain.",
      buckets: [1, 2],
      registers: [reference],
    });
    const upstreams = ["http://a.example", 'we"ird\\', "c\nd"];
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    for (let i = 0; i < 2_000; i++) {
      // Values on and around the bounds, tiny ones and ones above the last bound.
      const value =
        i % 7 === 0 ? (buckets[i % buckets.length] as number) : random() ** 4 * 100 * random();
      const upstream = upstreams[i % upstreams.length] as string;
      const code = i % 5 === 0 ? "500" : "200";
      ours.observe(value, upstream, code);
      theirs.labels(upstream, code).observe(value);
      plainOurs.observe(value);
      plainTheirs.observe(value);
    }
    expect(await registry.render()).toBe(await reference.metrics());
    expect(await registry.render()).toBe(await reference.metrics());
    expect(() => ours.observe(Number.NaN, "a", "200")).toThrow(TypeError);
    expect(() => registry.histogram("t_le", "Le.", [1], ["le"])).toThrow();
    expect(() => registry.histogram("t_seconds", "Again.", [1])).toThrow();
  });

  it("keeps counting across scrapes: each one shows every count so far", async () => {
    const registry = bare();
    const requests = registry.counter("t_requests_total", "Requests.", ["status"]);
    const plain = registry.counter("t_plain_total", "Plain.");
    requests.inc("200");
    requests.add(0, "304");
    expect(await registry.render()).toContain('t_requests_total{status="200"} 1\n');
    requests.inc("200");
    requests.add(2.5, "200");
    plain.inc();
    const text = await registry.render();
    expect(text).toContain('t_requests_total{status="200"} 4.5\n');
    expect(text).toContain('t_requests_total{status="304"} 0\n');
    expect(text).toContain("t_plain_total 1\n");
    expect(await registry.render()).toBe(text);
    expect(() => requests.add(-1, "200")).toThrow(TypeError);
    expect(() => requests.add(Number.NaN, "200")).toThrow(TypeError);
  });

  it("supports unlabelled metrics and refuses duplicates", async () => {
    const registry = bare();
    registry.counter("t_plain_total", "Plain.").inc();
    expect(await registry.render()).toContain("t_plain_total 1\n");
    expect(() => registry.counter("t_plain_total", "again")).toThrow();
  });

  it("includes the process and Node.js metrics by default", async () => {
    const text = await createMetricsRegistry().render();
    expect(text).toContain("# TYPE process_cpu_user_seconds_total counter");
    expect(text).toContain("# TYPE nodejs_eventloop_lag_seconds gauge");
  });
});

describe("bounded exposition", () => {
  it("keeps at most maxSeriesPerMetric label sets, counting later ones as _overflow", async () => {
    const registry = bare({ maxSeriesPerMetric: 2 });
    const requests = registry.counter("t_requests_total", "Requests.", ["upstream", "status"]);
    requests.inc("a", "200");
    requests.inc("b", "200");
    requests.inc("c", "200");
    requests.inc("d", "503");
    requests.inc("a", "200");
    expect(await registry.render()).toBe(
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

  it("renders gauges read at scrape time, labelled ones by their samples", async () => {
    const registry = bare();
    let bytes = 10;
    registry.gauge("t_cache_bytes", "Bytes.", () => bytes);
    registry.gaugeSamples("t_connections", "Connections.", ["state"], async () => [
      { labels: { state: "idle" }, value: 2 },
      { labels: { state: "active" }, value: 1 },
    ]);
    bytes = 42;
    const text = await registry.render();
    expect(text).toContain("t_cache_bytes 42\n");
    expect(text).toContain('t_connections{state="idle"} 2\n');
    expect(text).toContain('t_connections{state="active"} 1\n');
  });

  it("reports no samples for a labelled gauge whose read fails, and still renders the rest", async () => {
    const registry = bare();
    registry.counter("t_plain_total", "Plain.").inc();
    registry.gaugeSamples("t_connections", "Connections.", ["state"], async () => {
      throw new Error("database down");
    });
    const text = await registry.render();
    expect(text).toContain("t_plain_total 1\n");
    expect(text).not.toContain("t_connections{");
  });
});
