import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, readdir, readlink, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("../../..", import.meta.url));

/**
 * A newcomer's machine, for the README's promises:
 * - a checkout of this repository in a fresh folder: its files are symlinks to this one, its
 *   `.keyway/` is its own;
 * - a PATH with everything this machine has except pnpm (node, npx, curl, bash …);
 * - a private network namespace (`unshare --net`, loopback only), so the README's fixed ports
 *   (8080, 8081, 8082, 8090, 8091, 8092, 54329) are free whatever else runs on this machine, and commands run
 *   exactly as the README writes them.
 * Commands run in the namespace (`nsenter`), in the checkout, with that PATH.
 */
export interface NewcomerMachine {
  readonly dir: string;
  /** A clean environment: HOME, the PATH without pnpm, TERM. */
  readonly env: NodeJS.ProcessEnv;
  /** Runs a command to completion in the namespace. */
  run(command: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /**
   * Starts a long-running command in the namespace. With `terminal`, it runs on a
   * pseudo-terminal (`script`), and `press("\x03")` is Ctrl+C: the terminal sends SIGINT to its
   * whole foreground process group, as a real one does.
   */
  start(command: string, options?: StartOptions): Watched;
  /** The HTTP status of a GET from inside the namespace (0 when nothing answers). */
  status(url: string, headers?: Record<string, string>): Promise<number>;
  close(): Promise<void>;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  terminal?: boolean;
}

export interface Watched {
  readonly child: ChildProcess;
  /** Everything written so far (stdout and stderr, or the terminal's screen output). */
  output(): string;
  /** Waits until the output matches; fails naming `what` if the process ends or time runs out. */
  waitFor(pattern: RegExp, what: string, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Resolves with the exit code once the process has ended. */
  readonly exited: Promise<number | null>;
  /** Types into the terminal (`terminal: true` only). */
  press(keys: string): void;
  /** Ends it (SIGTERM, then SIGKILL) if still running. */
  kill(): Promise<void>;
}

export async function newcomerMachine(): Promise<NewcomerMachine> {
  const root = await mkdtemp(join(tmpdir(), "keyway-newcomer-"));
  // PostgreSQL runs as the `postgres` user when tests run as root; it must traverse these.
  await chmod(root, 0o755);
  const dir = join(root, "keyway");
  await mkdir(dir, { mode: 0o755 });
  for (const entry of await readdir(repo)) {
    if (entry.startsWith(".") || entry === "test-results") continue;
    await symlink(join(repo, entry), join(dir, entry));
  }
  const bin = join(root, "bin");
  await mkdir(bin);
  await linkPathWithoutPnpm(bin);
  const env: NodeJS.ProcessEnv = {
    HOME: process.env.HOME ?? root,
    PATH: bin,
    TERM: "dumb",
    // In the namespace there is no registry: npx takes the pnpm it fetched before (see below)
    // from its cache instead of retrying the registry for a minute.
    npm_config_prefer_offline: "true",
  };

  const holder = spawn(
    "unshare",
    ["--net", "sh", "-c", "ip link set lo up && echo up && exec sleep 100000"],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const holderUp = await new Promise<boolean>((resolve) => {
    holder.stdout?.once("data", () => resolve(true));
    holder.once("exit", () => resolve(false));
    holder.once("error", () => resolve(false));
  });
  if (!holderUp || holder.pid === undefined) {
    throw new Error("cannot make a network namespace (needs root, unshare and ip from iproute2)");
  }
  const inNamespace = ["-t", String(holder.pid), "-n", "--"];
  const watched: Watched[] = [];

  const run = (command: string, args: readonly string[], options: RunOptions = {}) =>
    new Promise<RunResult>((resolve) => {
      execFile(
        "nsenter",
        [...inNamespace, command, ...args],
        { cwd: dir, env: { ...env, ...options.env }, maxBuffer: 64 * 1024 * 1024 },
        (error, stdout, stderr) => {
          const code = error === null ? 0 : typeof error.code === "number" ? error.code : null;
          resolve({ code, stdout, stderr });
        },
      );
    });

  return {
    dir,
    env,
    run,
    start(command, options = {}) {
      const args = options.terminal
        ? [...inNamespace, "script", "-qfec", command, "/dev/null"]
        : [...inNamespace, "sh", "-c", command];
      const child = spawn("nsenter", args, {
        cwd: dir,
        env: { ...env, ...options.env },
        stdio: ["pipe", "pipe", "pipe"],
      });
      const handle = watch(child);
      watched.push(handle);
      return handle;
    },
    async status(url, headers = {}) {
      const headerArgs = Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]);
      const result = await run("curl", [
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        ...headerArgs,
        url,
      ]);
      return Number(result.stdout) || 0;
    },
    async close() {
      for (const handle of watched) await handle.kill();
      // Whatever a failed test left running in the namespace (a PostgreSQL whose parent was
      // killed, say) goes with it.
      await killNamespace(holder.pid ?? 0);
      holder.kill("SIGKILL");
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** SIGKILL to every process in the network namespace of `holderPid`, except the holder. */
async function killNamespace(holderPid: number): Promise<void> {
  const namespace = await readlink(`/proc/${holderPid}/ns/net`).catch(() => undefined);
  if (namespace === undefined) return;
  for (const entry of await readdir("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === holderPid) continue;
    if ((await readlink(`/proc/${pid}/ns/net`).catch(() => undefined)) !== namespace) continue;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
}

/** Links every command on this PATH into `bin`, except pnpm's. */
async function linkPathWithoutPnpm(bin: string): Promise<void> {
  // The node running the tests is the newcomer's node, wherever it was installed (e.g. Node 24
  // from npm's `node` package, whose folder the loop below skips as a node_modules one).
  const seen = new Set<string>(["node"]);
  await symlink(process.execPath, join(bin, "node"));
  for (const folder of (process.env.PATH ?? "").split(delimiter)) {
    // The test runner's own node_modules/.bin folders are not a newcomer's.
    if (folder === "" || folder.includes("node_modules")) continue;
    const entries = await readdir(folder).catch(() => [] as string[]);
    for (const entry of entries) {
      if (seen.has(entry) || entry === "pnpm" || entry === "pnpx") continue;
      seen.add(entry);
      await symlink(join(folder, entry), join(bin, entry));
    }
  }
}

function watch(child: ChildProcess): Watched {
  let output = "";
  const append = (chunk: Buffer) => {
    output += chunk.toString("utf8");
  };
  child.stdout?.on("data", append);
  child.stderr?.on("data", append);
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => resolve(code));
  });
  let ended = false;
  void exited.then(() => {
    ended = true;
  });
  return {
    child,
    output: () => output,
    exited,
    async waitFor(pattern, what, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = pattern.exec(output);
        if (match) return match;
        if (ended) throw new Error(`ended before ${what}:\n${output}`);
        if (Date.now() > deadline)
          throw new Error(`no ${what} within ${timeoutMs / 1000} s:\n${output}`);
        await sleep(100);
      }
    },
    press(keys) {
      child.stdin?.write(keys);
    },
    async kill() {
      if (ended) return;
      child.kill("SIGTERM");
      const forced = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(forced);
    },
  };
}
