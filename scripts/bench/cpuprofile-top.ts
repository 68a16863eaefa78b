/**
 * Where a process spent its CPU: reads a `.cpuprofile` written by `node --cpu-prof` and prints
 * the functions with the most self time, and self time grouped by where the code lives (the
 * gateway's own modules, undici, Node's internals, …). Used by `pnpm bench:gateway --profile`.
 *
 *   tsx scripts/bench/cpuprofile-top.ts FILE.cpuprofile [TOP]
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface FunctionCost {
  name: string;
  where: string;
  selfMs: number;
  selfPercent: number;
}

export interface ProfileSummary {
  totalMs: number;
  /** Share of samples in `(idle)`: the event loop waiting. */
  idlePercent: number;
  top: FunctionCost[];
  byArea: { area: string; selfMs: number; selfPercent: number }[];
}

function isCpuProfile(value: unknown): value is CpuProfile {
  return (
    typeof value === "object" &&
    value !== null &&
    "nodes" in value &&
    Array.isArray(value.nodes) &&
    "samples" in value &&
    Array.isArray(value.samples) &&
    "timeDeltas" in value &&
    Array.isArray(value.timeDeltas)
  );
}

/** A readable location: package or module name and line, without absolute paths. */
function locationOf(url: string, line: number): string {
  if (url === "") return "(native)";
  const path = url.startsWith("file://") ? fileURLToPath(url) : url;
  const pnpm = /node_modules\/\.pnpm\/[^/]+\/node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(path);
  if (pnpm) return `${pnpm[1]}/${pnpm[2]}:${line + 1}`;
  const repo = /\/(apps|packages|scripts)\/(.*)$/.exec(path);
  if (repo) return `${repo[1]}/${repo[2]}:${line + 1}`;
  return `${path}:${line + 1}`;
}

function areaOf(url: string, name: string): string {
  if (name === "(garbage collector)") return "garbage collector";
  if (name === "(program)" || name === "(root)") return "V8/native (program)";
  if (url === "") return "native (builtins, syscalls)";
  if (url.startsWith("node:")) {
    if (/node:(_http|http)/.test(url)) return "node:http";
    if (/node:(net|stream|internal\/streams|internal\/stream_base)/.test(url))
      return "node:net/streams";
    return "node (other internals)";
  }
  if (url.includes("/node_modules/.pnpm/undici@")) return "undici";
  if (url.includes("/node_modules/.pnpm/jose@")) return "jose";
  // The control plane's database and HTTP stack, for `bench:webhooks --build tsx`.
  const known =
    /\/node_modules\/\.pnpm\/(postgres|drizzle-orm|pg-boss|hono|@hono\+node-server|pino)@/.exec(
      url,
    );
  if (known) return known[1]?.replace("+", "/") ?? "other packages";
  if (url.includes("/node_modules/")) return "other packages";
  if (url.includes("/apps/data-plane-gateway/")) return "gateway";
  if (url.includes("/apps/control-plane-api/")) return "control-plane API";
  if (url.includes("/apps/control-plane-worker/")) return "worker";
  if (url.includes("/packages/")) return "keyway packages";
  return "other";
}

export function summarizeCpuProfile(file: string, topCount = 25): ProfileSummary {
  const parsed: unknown = JSON.parse(readFileSync(file, "utf8"));
  if (!isCpuProfile(parsed)) throw new Error(`${file} is not a .cpuprofile`);
  const byId = new Map<number, ProfileNode>();
  for (const node of parsed.nodes) byId.set(node.id, node);

  // Self time of a node: the time deltas of the samples taken while it was on top of the stack.
  const selfUs = new Map<number, number>();
  for (let i = 0; i < parsed.samples.length; i++) {
    const id = parsed.samples[i] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (parsed.timeDeltas[i] ?? 0));
  }
  const totalUs = parsed.endTime - parsed.startTime;

  const byFunction = new Map<string, FunctionCost>();
  const byArea = new Map<string, number>();
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (node === undefined) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(idle)") {
      idleUs += us;
      continue;
    }
    const name = functionName === "" ? "(anonymous)" : functionName;
    const where = locationOf(url, lineNumber);
    const key = `${name} ${where}`;
    const cost = byFunction.get(key) ?? { name, where, selfMs: 0, selfPercent: 0 };
    cost.selfMs += us / 1000;
    byFunction.set(key, cost);
    const area = areaOf(url, functionName);
    byArea.set(area, (byArea.get(area) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const top = [...byFunction.values()]
    .sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, topCount)
    .map((cost) => ({ ...cost, selfPercent: (cost.selfMs * 1000 * 100) / busyUs }));
  return {
    totalMs: totalUs / 1000,
    idlePercent: (idleUs * 100) / totalUs,
    top,
    byArea: [...byArea.entries()]
      .map(([area, us]) => ({ area, selfMs: us / 1000, selfPercent: (us * 100) / busyUs }))
      .sort((a, b) => b.selfMs - a.selfMs),
  };
}

export function printProfileSummary(summary: ProfileSummary): void {
  console.log(
    `\nCPU profile: ${summary.totalMs.toFixed(0)} ms, idle ${summary.idlePercent.toFixed(1)}%` +
      " (percentages below are of busy time)",
  );
  console.log("\nself time by area");
  for (const { area, selfMs, selfPercent } of summary.byArea) {
    console.log(
      `  ${selfPercent.toFixed(1).padStart(5)}%  ${selfMs.toFixed(0).padStart(7)} ms  ${area}`,
    );
  }
  console.log("\ntop functions by self time");
  for (const { name, where, selfMs, selfPercent } of summary.top) {
    console.log(
      `  ${selfPercent.toFixed(1).padStart(5)}%  ${selfMs.toFixed(0).padStart(7)} ms  ${name}  ${where}`,
    );
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (file === undefined) throw new Error("usage: cpuprofile-top.ts FILE.cpuprofile [TOP]");
  printProfileSummary(summarizeCpuProfile(file, Number(process.argv[3] ?? 25)));
}
