import {
  collectDefaultMetrics,
  Counter as PromCounter,
  Gauge as PromGauge,
  Histogram as PromHistogram,
  type Metric as PromMetric,
  Registry,
} from "prom-client";

/**
 * The one metrics registry of every Keyway service: prom-client, with its default process and
 * Node.js metrics (`process_*`, `nodejs_*`: CPU, memory, event-loop lag, GC).
 *
 * Counters and histograms are used with positional label values (`inc("api.example", "200")`) on
 * hot paths: each label set's prom-client child is looked up through nested maps, so counting a
 * request with label values seen before allocates nothing. Label values must come from bounded
 * sets; as a safety net each metric keeps at most `maxSeriesPerMetric` label sets and counts later
 * new ones together under the label value `_overflow`.
 */
export const OVERFLOW_LABEL_VALUE = "_overflow";

export interface Counter {
  inc(a?: string, b?: string, c?: string): void;
  add(amount: number, a?: string, b?: string, c?: string): void;
}

export interface Histogram {
  observe(value: number, a?: string, b?: string, c?: string): void;
}

/** A labelled value read at every scrape. */
export interface GaugeSample {
  labels: Readonly<Record<string, string>>;
  value: number;
}

export interface MetricsRegistry {
  /** The prom-client registry (tests read single metrics from it). */
  readonly registry: Registry;
  counter(name: string, help: string, labelNames?: readonly string[]): Counter;
  histogram(
    name: string,
    help: string,
    buckets: readonly number[],
    labelNames?: readonly string[],
  ): Histogram;
  /** A value read from `read` at every scrape, without labels. */
  gauge(name: string, help: string, read: () => number | Promise<number>): void;
  /** Labelled values read from `read` at every scrape (a failed read reports no samples). */
  gaugeSamples(
    name: string,
    help: string,
    labelNames: readonly string[],
    read: () => readonly GaugeSample[] | Promise<readonly GaugeSample[]>,
  ): void;
  /** The Prometheus text exposition of every metric. */
  render(): Promise<string>;
  readonly contentType: string;
}

export interface MetricsRegistryOptions {
  /** Label sets kept per metric before new ones are counted as `_overflow`. Default 1,000. */
  maxSeriesPerMetric?: number;
  /** Process and Node.js metrics (default on). */
  defaultMetrics?: boolean;
}

/** Latency buckets in seconds, from 0.5 ms (a cached gateway hop) to 60 s. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

/** One label set of a counter: what it counted since the last scrape. */
interface PendingCount {
  readonly labels: Readonly<Record<string, string>>;
  count: number;
  /** Whether prom-client has the series yet (a label set counted 0 times is still shown). */
  reported: boolean;
}

interface LabelNode<T> {
  readonly next: Map<string, LabelNode<T>>;
  child: T | undefined;
}

/** Children of one metric by label values: one map level per label. */
function childCache<T>(
  depth: number,
  make: (values: string[]) => T,
  maxSeries: number,
): (a?: string, b?: string, c?: string) => T {
  const root: LabelNode<T> = { next: new Map(), child: undefined };
  let series = 0;
  const step = (node: LabelNode<T>, value: string): LabelNode<T> => {
    let next = node.next.get(value);
    if (next === undefined) {
      next = { next: new Map(), child: undefined };
      node.next.set(value, next);
    }
    return next;
  };
  const find = (values: string[]): T => {
    let node = root;
    for (const value of values) node = step(node, value);
    if (node.child === undefined) {
      node.child = make(values);
      series++;
    }
    return node.child;
  };
  return (a, b, c) => {
    let node: LabelNode<T> | undefined = root;
    if (depth > 0) node = node.next.get(a ?? "");
    if (depth > 1) node = node?.next.get(b ?? "");
    if (depth > 2) node = node?.next.get(c ?? "");
    if (node?.child !== undefined) return node.child;
    const values = [a ?? "", b ?? "", c ?? ""].slice(0, depth);
    if (series >= maxSeries) return find(values.map(() => OVERFLOW_LABEL_VALUE));
    return find(values);
  };
}

/** One label set of a histogram: per-bucket (not cumulative) counts, sum and count. */
class HistogramSeries {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Readonly<Record<string, string>>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const { bounds } = this;
    // The first bound ≥ value; above the last one only `+Inf` (the count) holds it.
    for (let at = 0; at < bounds.length; at++) {
      if (value <= (bounds[at] as number)) {
        this.counts[at] = (this.counts[at] as number) + 1;
        break;
      }
    }
    this.sum += value;
    this.count += 1;
  }
}

/** A sample as prom-client's registry renders it (`metricName{labels} value`). */
interface HistogramSample {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

/**
 * A Prometheus histogram kept in plain numbers and registered with prom-client's registry as a
 * metric of its own: `get()` returns the samples prom-client's `Histogram` would (cumulative
 * `_bucket` samples with `le` first, then `+Inf`, `_sum`, `_count`, series in first-observed order).
 */
class PlainHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  readonly #labelNames: readonly string[];
  readonly #bounds: readonly number[];
  readonly #series: HistogramSeries[] = [];

  constructor(
    readonly name: string,
    readonly help: string,
    buckets: readonly number[],
    labelNames: readonly string[],
  ) {
    // prom-client's own checks of the name, the label names (`le` is reserved) and the help,
    // on a histogram that is built for them only and never registered.
    new PromHistogram({
      name,
      help,
      buckets: [...buckets],
      labelNames: [...labelNames],
      registers: [],
    });
    this.#labelNames = labelNames;
    this.#bounds = [...buckets];
  }

  series(values: readonly string[]): HistogramSeries {
    const labels: Record<string, string> = {};
    this.#labelNames.forEach((label, at) => {
      labels[label] = values[at] ?? "";
    });
    const series = new HistogramSeries(labels, this.#bounds);
    this.#series.push(series);
    return series;
  }

  reset(): void {
    for (const series of this.#series) {
      series.counts.fill(0);
      series.sum = 0;
      series.count = 0;
    }
  }

  async get() {
    const bucket = `${this.name}_bucket`;
    const values: HistogramSample[] = [];
    for (const series of this.#series) {
      let cumulative = 0;
      this.#bounds.forEach((bound, at) => {
        cumulative += series.counts[at] as number;
        values.push({
          labels: { le: bound, ...series.labels },
          value: cumulative,
          metricName: bucket,
        });
      });
      values.push(
        { labels: { le: "+Inf", ...series.labels }, value: series.count, metricName: bucket },
        { labels: { ...series.labels }, value: series.sum, metricName: `${this.name}_sum` },
        { labels: { ...series.labels }, value: series.count, metricName: `${this.name}_count` },
      );
    }
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    };
  }
}

export function createMetricsRegistry(options: MetricsRegistryOptions = {}): MetricsRegistry {
  const registry = new Registry();
  const maxSeries = options.maxSeriesPerMetric ?? 1000;
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const checkLabels = (labelNames: readonly string[]) => {
    if (labelNames.length > 3) throw new TypeError("at most three labels per metric");
  };

  return {
    registry,
    contentType: registry.contentType,

    counter(name, help, labelNames = []) {
      checkLabels(labelNames);
      // Counts add up in plain numbers and reach prom-client at each scrape (`collect`): its
      // `inc` hashes and validates the label set on every call, which was a measurable share of a
      // gateway request (docs/benchmarks.md). The exposition is the same, read at any time.
      const series: PendingCount[] = [];
      const newSeries = (values: readonly string[]): PendingCount => {
        const labels: Record<string, string> = {};
        labelNames.forEach((label, at) => {
          labels[label] = values[at] ?? "";
        });
        const entry = { labels, count: 0, reported: false };
        series.push(entry);
        return entry;
      };
      new PromCounter({
        name,
        help,
        labelNames: [...labelNames],
        registers: [registry],
        collect() {
          for (const entry of series) {
            if (entry.reported && entry.count === 0) continue;
            this.inc(entry.labels, entry.count);
            entry.count = 0;
            entry.reported = true;
          }
        },
      });
      const child =
        labelNames.length === 0
          ? (() => {
              const only = newSeries([]);
              return () => only;
            })()
          : childCache(labelNames.length, newSeries, maxSeries);
      return {
        inc: (a, b, c) => {
          child(a, b, c).count += 1;
        },
        add: (amount, a, b, c) => {
          // prom-client would throw at the scrape; the caller's mistake is reported here.
          if (!(amount >= 0 && Number.isFinite(amount))) {
            throw new TypeError(`a counter only adds finite amounts ≥ 0, not ${amount}`);
          }
          child(a, b, c).count += amount;
        },
      };
    },

    histogram(name, help, buckets, labelNames = []) {
      checkLabels(labelNames);
      // Observations add up in plain numbers, read at each scrape, instead of prom-client's
      // `observe`, which hashes and validates the label set on every call (one per gateway
      // request). The exposition is prom-client's own (tested against its `Histogram`).
      const metric = new PlainHistogram(name, help, buckets, labelNames);
      registry.registerMetric(metric as unknown as PromMetric);
      if (labelNames.length === 0) {
        const only = metric.series([]);
        return { observe: (value) => only.observe(value) };
      }
      const child = childCache(labelNames.length, (values) => metric.series(values), maxSeries);
      return { observe: (value, a, b, c) => child(a, b, c).observe(value) };
    },

    gauge(name, help, read) {
      new PromGauge({
        name,
        help,
        registers: [registry],
        async collect() {
          this.set(await read());
        },
      });
    },

    gaugeSamples(name, help, labelNames, read) {
      new PromGauge({
        name,
        help,
        labelNames: [...labelNames],
        registers: [registry],
        async collect() {
          this.reset();
          let samples: readonly GaugeSample[];
          try {
            samples = await read();
          } catch {
            return;
          }
          for (const sample of samples) this.set({ ...sample.labels }, sample.value);
        },
      });
    },

    render: () => registry.metrics(),
  };
}
