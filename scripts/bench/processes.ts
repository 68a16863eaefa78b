import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The processes of a multi-process benchmark (`bench:gateway`, `bench:webhooks`): starting them,
 * waiting for them, stopping them, and what they cost (CPU and memory from /proc, Linux).
 */

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

export interface Spawned {
  child: ChildProcess;
  output: () => string;
}

/**
 * A `node` process in the repository's root; stdout goes to `stdoutFd` when given, else kept.
 * Its stdin is a pipe (`child.stdin`) with `stdin: "pipe"`, else closed.
 */
export function spawnNode(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; stdoutFd?: number; stdin?: "pipe" },
): Spawned {
  let output = "";
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { ...process.env, ...options.env },
    stdio: [options.stdin ?? "ignore", options.stdoutFd ?? "pipe", "pipe"],
  });
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
  });
  return { child, output: () => output };
}

export async function waitFor(what: string, check: () => Promise<boolean>, spawned?: Spawned) {
  for (let i = 0; i < 300; i++) {
    if (spawned && spawned.child.exitCode !== null) {
      throw new Error(`${what} exited early:\n${spawned.output()}`);
    }
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not become ready:\n${spawned?.output() ?? ""}`);
}

/** Whether a service's `/readyz` at `baseUrl` answers 200 (false while it cannot be reached). */
export function isReady(baseUrl: string): Promise<boolean> {
  return fetch(`${baseUrl}/readyz`).then(
    (r) => r.status === 200,
    () => false,
  );
}

export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolveConnect) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolveConnect(true);
    });
    socket.once("error", () => resolveConnect(false));
  });
}

export async function stop(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

/** User + system CPU time of processes so far, from /proc (Linux; clock ticks of 10 ms). */
export function cpuMs(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // The process has gone: its time no longer counts.
    }
  }
  return ticks * 10;
}

/** Child processes of `pid` (nginx's workers under its master, PostgreSQL's backends). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter((p) => p !== "")
      .map(Number);
  } catch {
    return [];
  }
}

/** Resident set size of a process, from /proc (Linux). */
export function rssMb(pid: number, field: "VmRSS" | "VmHWM" = "VmRSS"): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
    return kb / 1024;
  } catch {
    return 0;
  }
}

/** Runs a command to its end; resolves with its output (stdout and stderr), rejects unless 0. */
export function runProcess(command: string, args: string[]): Promise<string> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString("utf8");
    });
    child.stderr.on("data", (chunk: Buffer) => {
      out += chunk.toString("utf8");
    });
    child.once("error", reject);
    child.once("exit", (code) => {
      if (code === 0) resolveRun(out);
      else reject(new Error(`${command} exited with ${code}:\n${out}`));
    });
  });
}
