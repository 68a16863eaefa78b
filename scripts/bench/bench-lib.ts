import { writeFileSync } from "node:fs";
import os from "node:os";

/** Shared plumbing for `scripts/bench/*`: the `--json FILE` flag, machine facts, statistics. */

export function jsonOutputPath(argv: readonly string[] = process.argv): string | undefined {
  const at = argv.indexOf("--json");
  if (at < 0) return undefined;
  const file = argv[at + 1];
  if (!file || file.startsWith("--")) throw new Error("--json needs a file name");
  return file;
}

export function machineFacts(command: string) {
  return {
    node: process.version,
    cpu: os.cpus()[0]?.model ?? "unknown",
    cores: os.cpus().length,
    platform: `${os.platform()} ${os.arch()}`,
    loadAverage: os.loadavg()[0],
    date: new Date().toISOString(),
    command,
  };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const at = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[at] ?? Number.NaN;
}

/** Milliseconds taken by `fn`, measured with the monotonic high-resolution clock. */
export function timeMs(fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

export function writeJson(file: string | undefined, figures: unknown): void {
  if (!file) return;
  writeFileSync(file, `${JSON.stringify(figures, null, 2)}\n`);
  console.log(`wrote ${file}`);
}
