/**
 * Throw-away measurement: CPU per keep-alive plain-HTTP request of the plain Node forwarder with
 * its upstream leg written in different ways (`gateway-forwarder-variants.ts`), each its own
 * process, against `gateway-upstream.ts`, loaded by wrk (1 thread) at C connections, variants
 * alternated round by round. Proxy CPU from /proc per request served.
 *
 *   node --import tsx scripts/bench/gateway-forwarder-ceilings.ts [--variants a,b] [--rounds R]
 *        [--duration S] [--connections C]
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { median } from "./bench-lib";
import { canConnect, cpuMs, runProcess, spawnNode, stop, waitFor } from "./processes";

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
}
const variants = (
  flag("--variants") ?? "pool-request,pool-dispatch,client-per-socket,http-agent,raw"
).split(",");
const rounds = Number(flag("--rounds") ?? 4);
const duration = Number(flag("--duration") ?? 4);
const connections = Number(flag("--connections") ?? 16);
const here = import.meta.dirname;
const dir = mkdtempSync(join(tmpdir(), "fwd-ceil-"));
execFileSync(
  "openssl",
  [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-subj",
    "/CN=localhost",
    "-keyout",
    join(dir, "key.pem"),
    "-out",
    join(dir, "cert.pem"),
    "-days",
    "1",
  ],
  { stdio: "ignore" },
);
const bundle = join(dir, "variants.mjs");
await build({
  entryPoints: [join(here, "gateway-forwarder-variants.ts")],
  outfile: bundle,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  banner: {
    js: 'import { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);',
  },
  logLevel: "warning",
});

const base = 41_000 + Math.floor(Math.random() * 1000) * 10;
const upstreamPort = base;
const upstream = spawnNode(
  [
    "--import",
    "tsx",
    join(here, "gateway-upstream.ts"),
    String(upstreamPort),
    String(base + 1),
    join(dir, "cert.pem"),
    join(dir, "key.pem"),
  ],
  {},
);
await waitFor("upstream", async () => upstream.output().includes("ready"), upstream);
const procs = variants.map((variant, i) => {
  const port = base + 2 + i;
  const spawned = spawnNode(
    [bundle, variant, String(port), `http://127.0.0.1:${upstreamPort}`, "s3cr3t"],
    {},
  );
  return { variant, port, spawned };
});
for (const p of procs) {
  await waitFor(p.variant, () => canConnect(p.port), p.spawned);
}

async function wrk(port: number, seconds: number): Promise<number> {
  const out = await runProcess("wrk", [
    "-t1",
    `-c${connections}`,
    `-d${seconds}s`,
    `http://127.0.0.1:${port}/v1/items`,
  ]);
  const m = /(\d+) requests in/.exec(out);
  if (!/Non-2xx/.test(out) && m) return Number(m[1]);
  throw new Error(`wrk: ${out}`);
}

const results = new Map<string, number[]>(variants.map((v) => [v, []]));
console.log(`node ${process.version}, ${connections} connections, ${duration} s, ${rounds} rounds`);
for (const p of procs) await wrk(p.port, 2); // first warm-up
for (let r = 0; r < rounds; r++) {
  const line: string[] = [];
  const order = r % 2 === 0 ? procs : [...procs].reverse();
  for (const p of order) {
    await wrk(p.port, 1);
    const pid = p.spawned.child.pid ?? 0;
    const before = cpuMs([pid]);
    const requests = await wrk(p.port, duration);
    const us = ((cpuMs([pid]) - before) * 1000) / requests;
    results.get(p.variant)?.push(us);
    line.push(`${p.variant} ${(requests / duration).toFixed(0)}/s ${us.toFixed(1)} µs`);
  }
  console.log(`round ${r + 1}: ${line.join(" | ")}`);
}
for (const [variant, values] of results) {
  console.log(
    `${variant.padEnd(18)} median ${median(values).toFixed(1)} µs/req  (${values.map((v) => v.toFixed(1)).join(", ")})`,
  );
}
for (const p of procs) await stop(p.spawned.child);
await stop(upstream.child);
