/**
 * A tiny in-process Prometheus registry: counters and histograms with up to three labels, and
 * gauges read when rendered, in the text exposition format (version 0.0.4). Label children are
 * found through nested maps, so counting a request with label values seen before allocates
 * nothing.
 *
 * The exposition stays small whatever the traffic: label values must come from bounded sets (the
 * gateway's are listed in its README), and as a safety net each metric keeps at most
 * `maxSeriesPerMetric` label sets; later new ones are counted together under the label value
 * `_overflow`.
 */

type LabelValues = readonly string[];

interface Child<T> {
  labels: LabelValues;
  cell: T;
}

interface LabelNode<T> {
  readonly next: Map<string, LabelNode<T>>;
  child: Child<T> | undefined;
}

export const OVERFLOW_LABEL_VALUE = "_overflow";

/** A trie over label values: one node per value, the child at the node of its last value. */
class LabelTree<T> {
  readonly #root: LabelNode<T> = { next: new Map(), child: undefined };
  readonly children: Child<T>[] = [];

  constructor(
    private readonly depth: number,
    private readonly create: () => T,
    private readonly maxSeries: number,
  ) {}

  get(a?: string, b?: string, c?: string): T {
    let node: LabelNode<T> | undefined = this.#root;
    if (this.depth > 0) node = node.next.get(a ?? "");
    if (this.depth > 1) node = node?.next.get(b ?? "");
    if (this.depth > 2) node = node?.next.get(c ?? "");
    if (node?.child !== undefined) return node.child.cell;
    if (this.children.length >= this.maxSeries) {
      const overflow = OVERFLOW_LABEL_VALUE;
      return this.#add(overflow, overflow, overflow);
    }
    return this.#add(a, b, c);
  }

  #add(a: string | undefined, b: string | undefined, c: string | undefined): T {
    let node = this.#root;
    if (this.depth > 0) node = step(node, a);
    if (this.depth > 1) node = step(node, b);
    if (this.depth > 2) node = step(node, c);
    if (node.child !== undefined) return node.child.cell;
    const labels = [a ?? "", b ?? "", c ?? ""].slice(0, this.depth);
    node.child = { labels, cell: this.create() };
    this.children.push(node.child);
    return node.child.cell;
  }
}

function step<T>(node: LabelNode<T>, value: string | undefined): LabelNode<T> {
  const key = value ?? "";
  let next = node.next.get(key);
  if (next === undefined) {
    next = { next: new Map(), child: undefined };
    node.next.set(key, next);
  }
  return next;
}

export interface CounterCell {
  value: number;
}

export interface Counter {
  inc(a?: string, b?: string, c?: string): void;
  add(amount: number, a?: string, b?: string, c?: string): void;
}

export interface HistogramCell {
  /** Cumulative is computed at render time; these are per-bucket counts. */
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

export interface Histogram {
  observe(value: number, a?: string, b?: string, c?: string): void;
}

interface Metric {
  render(out: string[]): void;
}

export interface MetricsRegistry {
  counter(name: string, help: string, labelNames?: readonly string[]): Counter;
  /** A value read from `read` at every render, without labels. */
  gauge(name: string, help: string, read: () => number): void;
  histogram(
    name: string,
    help: string,
    buckets: readonly number[],
    labelNames?: readonly string[],
  ): Histogram;
  /** The Prometheus text exposition of every metric. */
  render(): string;
}

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export interface MetricsRegistryOptions {
  /** Label sets kept per metric before new ones are counted as `_overflow`. Default 1,000. */
  maxSeriesPerMetric?: number;
}

export function createMetricsRegistry(options: MetricsRegistryOptions = {}): MetricsRegistry {
  const maxSeries = options.maxSeriesPerMetric ?? 1000;
  const metrics: Metric[] = [];
  const names = new Set<string>();

  function register(name: string, labelNames: readonly string[]): void {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) throw new TypeError(`bad metric name ${name}`);
    if (names.has(name)) throw new TypeError(`metric ${name} is registered twice`);
    if (labelNames.length > 3) throw new TypeError("at most three labels per metric");
    names.add(name);
  }

  return {
    counter(name, help, labelNames = []) {
      register(name, labelNames);
      const tree = new LabelTree<CounterCell>(labelNames.length, () => ({ value: 0 }), maxSeries);
      metrics.push({
        render(out) {
          out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} counter`);
          for (const { labels, cell } of tree.children) {
            out.push(`${name}${labelText(labelNames, labels)} ${formatNumber(cell.value)}`);
          }
        },
      });
      return {
        inc(a, b, c) {
          tree.get(a, b, c).value++;
        },
        add(amount, a, b, c) {
          tree.get(a, b, c).value += amount;
        },
      };
    },

    gauge(name, help, read) {
      register(name, []);
      metrics.push({
        render(out) {
          out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} gauge`);
          out.push(`${name} ${formatNumber(read())}`);
        },
      });
    },

    histogram(name, help, buckets, labelNames = []) {
      register(name, labelNames);
      const bounds = [...buckets].sort((x, y) => x - y);
      const tree = new LabelTree<HistogramCell>(
        labelNames.length,
        () => ({ buckets: new Float64Array(bounds.length), sum: 0, count: 0 }),
        maxSeries,
      );
      metrics.push({
        render(out) {
          out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} histogram`);
          for (const { labels, cell } of tree.children) {
            let cumulative = 0;
            for (let i = 0; i < bounds.length; i++) {
              cumulative += cell.buckets[i]!;
              const le = labelText([...labelNames, "le"], [...labels, formatNumber(bounds[i]!)]);
              out.push(`${name}_bucket${le} ${cumulative}`);
            }
            const inf = labelText([...labelNames, "le"], [...labels, "+Inf"]);
            out.push(`${name}_bucket${inf} ${cell.count}`);
            const plain = labelText(labelNames, labels);
            out.push(`${name}_sum${plain} ${formatNumber(cell.sum)}`);
            out.push(`${name}_count${plain} ${cell.count}`);
          }
        },
      });
      return {
        observe(value, a, b, c) {
          const cell = tree.get(a, b, c);
          cell.sum += value;
          cell.count++;
          for (let i = 0; i < bounds.length; i++) {
            if (value <= bounds[i]!) {
              cell.buckets[i]!++;
              break;
            }
          }
        },
      };
    },

    render() {
      const out: string[] = [];
      for (const metric of metrics) metric.render(out);
      return `${out.join("\n")}\n`;
    },
  };
}

function labelText(names: readonly string[], values: readonly (string | undefined)[]): string {
  if (names.length === 0) return "";
  const parts: string[] = [];
  for (let i = 0; i < names.length; i++) {
    parts.push(`${names[i]}="${escapeLabelValue(values[i] ?? "")}"`);
  }
  return `{${parts.join(",")}}`;
}

/** Label values escape backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
}

/** HELP text escapes backslash and line feed. */
function escapeHelp(help: string): string {
  return help.replace(/[\\\n]/g, (c) => (c === "\n" ? "\\n" : "\\\\"));
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(value);
}
