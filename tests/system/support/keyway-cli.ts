import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import type { CommandResult } from "./stack";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const CLI_MAIN = join(ROOT, "apps", "cli", "src", "main.ts");

export interface KeywayProcess {
  child: ChildProcess;
  /** Everything written to stdout so far. */
  stdout(): string;
  done: Promise<CommandResult & { signal: NodeJS.Signals | null }>;
}

/**
 * `keyway …` as a real process (tsx, as `pnpm keyway` runs it) with nothing in its environment
 * but PATH and what `env` adds (KEYWAY_URL, KEYWAY_TOKEN): whatever its command sees, keyway set.
 */
export function startKeyway(args: readonly string[], env: Record<string, string>): KeywayProcess {
  const child = spawn(process.execPath, ["--import", "tsx", CLI_MAIN, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const done = new Promise<CommandResult & { signal: NodeJS.Signals | null }>((resolve) => {
    child.on("close", (code, signal) => resolve({ exitCode: code ?? -1, signal, stdout, stderr }));
  });
  return { child, stdout: () => stdout, done };
}

export function keyway(
  args: readonly string[],
  env: Record<string, string>,
): Promise<CommandResult & { signal: NodeJS.Signals | null }> {
  return startKeyway(args, env).done;
}
