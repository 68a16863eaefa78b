/**
 * A closed-loop HTTP load generator on undici, for the cases of `pnpm bench:gateway` that `wrk`
 * cannot drive (HTTPS through a proxy needs `CONNECT`) and as the fallback when `wrk` is not
 * installed. Runs in its own process: `connections` loops, each sending its next request as soon
 * as the previous response body has been read, over warm keep-alive connections (a warm-up
 * period runs first on the same connections and is not counted).
 *
 *   node --import tsx scripts/bench/gateway-load.ts '<LoadSpec as JSON>'
 *
 * Prints one `LOAD_JSON {…}` line (latencies in microseconds, like wrk's).
 */
import { type Dispatcher, Pool, ProxyAgent } from "undici";
import { percentile } from "./bench-lib";

export interface LoadSpec {
  /** Full URL of the request target, e.g. `https://secure.bench.test/v1/items`. */
  url: string;
  method: "GET" | "POST";
  body?: string;
  headers?: Record<string, string>;
  connections: number;
  warmupMs: number;
  durationMs: number;
  /** PEM trusted for the target's TLS (the gateway CA when intercepted). */
  ca?: string;
  /** TLS server name when it differs from the URL's host. */
  servername?: string;
  /**
   * Send through this forward proxy: `tunnel` → `CONNECT` (https targets), else absolute-form
   * requests on the proxy connection (plain http targets).
   */
  proxy?: { uri: string; token: string; tunnel: boolean };
}

export interface LoadResult {
  requests: number;
  durationUs: number;
  errors: number;
  p50Us: number;
  p99Us: number;
  meanUs: number;
  maxUs: number;
}

async function run(spec: LoadSpec): Promise<LoadResult> {
  const target = new URL(spec.url);
  const tls = {
    ...(spec.ca ? { ca: spec.ca } : {}),
    ...(spec.servername ? { servername: spec.servername } : {}),
  };
  const dispatcher: Dispatcher = spec.proxy
    ? new ProxyAgent({
        uri: spec.proxy.uri,
        token: spec.proxy.token,
        proxyTunnel: spec.proxy.tunnel,
        requestTls: tls,
      })
    : new Pool(target.origin, { connect: tls, connections: spec.connections });
  const options: Dispatcher.RequestOptions = {
    origin: target.origin,
    path: `${target.pathname}${target.search}`,
    method: spec.method,
    headers: spec.headers ?? {},
    ...(spec.body !== undefined ? { body: spec.body } : {}),
  };

  const latenciesUs: number[] = [];
  let errors = 0;
  let measuring = false;
  let running = true;
  let windowStart = 0;
  let windowEnd = Number.POSITIVE_INFINITY;

  async function loop(): Promise<void> {
    while (running) {
      const started = performance.now();
      let ok = false;
      try {
        const response = await dispatcher.request(options);
        await response.body.text();
        ok = response.statusCode === 200;
      } catch {
        ok = false;
      }
      const ended = performance.now();
      if (!measuring || ended > windowEnd) continue;
      if (ok) latenciesUs.push((ended - started) * 1000);
      else errors++;
    }
  }

  const loops = Array.from({ length: spec.connections }, loop);
  await new Promise((resolve) => setTimeout(resolve, spec.warmupMs));
  measuring = true;
  windowStart = performance.now();
  await new Promise((resolve) => setTimeout(resolve, spec.durationMs));
  windowEnd = performance.now();
  running = false;
  await Promise.all(loops);
  await dispatcher.close();

  // Responses that began during the warm-up but ended in the window are counted: a closed loop
  // keeps `connections` requests in flight, so the edges balance out.
  const durationUs = (windowEnd - windowStart) * 1000;
  return {
    requests: latenciesUs.length,
    durationUs,
    errors,
    p50Us: percentile(latenciesUs, 50),
    p99Us: percentile(latenciesUs, 99),
    meanUs: latenciesUs.reduce((a, b) => a + b, 0) / Math.max(1, latenciesUs.length),
    maxUs: maxOf(latenciesUs),
  };
}

function maxOf(values: readonly number[]): number {
  let max = 0;
  for (const value of values) if (value > max) max = value;
  return max;
}

function parseSpec(text: string | undefined): LoadSpec {
  if (text === undefined) throw new Error("usage: gateway-load.ts '<LoadSpec JSON>'");
  const spec: unknown = JSON.parse(text);
  const valid =
    typeof spec === "object" &&
    spec !== null &&
    "url" in spec &&
    typeof spec.url === "string" &&
    "method" in spec &&
    (spec.method === "GET" || spec.method === "POST") &&
    "connections" in spec &&
    Number.isInteger(spec.connections) &&
    "warmupMs" in spec &&
    typeof spec.warmupMs === "number" &&
    "durationMs" in spec &&
    typeof spec.durationMs === "number";
  if (!valid) throw new Error(`not a load spec: ${text}`);
  // The required fields are checked above; the optional ones are written by `gateway.ts`.
  return spec as LoadSpec;
}

const result = await run(parseSpec(process.argv[2]));
process.stdout.write(`LOAD_JSON ${JSON.stringify(result)}\n`);
