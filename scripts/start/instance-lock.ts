import { readFileSync, unlinkSync } from "node:fs";
import { mkdir, readFile, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** Another `pnpm start` holds the lock of this folder. */
export class AlreadyRunningError extends Error {
  override readonly name = "AlreadyRunningError";
  readonly code = "ALREADY_RUNNING";
  constructor(
    readonly projectDir: string,
    readonly pid: number,
  ) {
    super(`Keyway is already running in ${projectDir} (pid ${pid})`);
  }
}

export interface InstanceLock {
  readonly path: string;
  /** Removes the lock file if it is still ours; synchronous, so an `exit` listener can call it. */
  release(): void;
}

/**
 * One `pnpm start` per folder: `<stateDir>/start.pid` holds the running one's process id, taken
 * before anything starts (a second start would otherwise fail later, on PostgreSQL's own lock
 * file or a taken port, with a message that does not say why). A file whose process is gone (a
 * start killed outright, a reboot) is stale and taken over. The lock is released when this
 * process exits.
 */
export async function acquireInstanceLock(
  stateDir: string,
  projectDir: string,
): Promise<InstanceLock> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const path = join(stateDir, "start.pid");
  for (let attempt = 1; ; attempt++) {
    try {
      // `wx`: of two starts racing here, exactly one creates the file.
      await writeFile(path, `${process.pid}\n`, { flag: "wx", mode: 0o644 });
      break;
    } catch (error) {
      if (!isErrno(error, "EEXIST") || attempt > 2) throw error;
    }
    const holder = Number.parseInt(await readFile(path, "utf8").catch(() => ""), 10);
    if (Number.isInteger(holder) && holder > 0 && (await isStartProcess(holder))) {
      throw new AlreadyRunningError(projectDir, holder);
    }
    await unlink(path).catch((error: unknown) => {
      if (!isErrno(error, "ENOENT")) throw error;
    });
  }
  const release = () => {
    try {
      if (readFileSync(path, "utf8").trim() === String(process.pid)) unlinkSync(path);
    } catch {
      // Already gone: nothing to release.
    }
  };
  process.once("exit", release);
  return { path, release };
}

/**
 * Whether `pid` is a live process that can be a `pnpm start`. After a reboot the number may
 * belong to an unrelated process: where /proc tells (Linux), its command line must name the
 * start script.
 */
async function isStartProcess(pid: number): Promise<boolean> {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: alive, but another user's.
    if (!isErrno(error, "EPERM")) return false;
  }
  const commandLine = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => undefined);
  return commandLine === undefined || commandLine.includes("start.ts");
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && "code" in error && error.code === code;
}
