import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { AlreadyRunningError, acquireInstanceLock } from "./instance-lock";

const children: ChildProcess[] = [];
const dirs: string[] = [];

/** A live process whose command line looks like `pnpm start`'s (it names start.ts). */
function fakeStart(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)", "scripts/start.ts"]);
  children.push(child);
  return new Promise((resolve) => child.once("spawn", () => resolve(child)));
}

async function stateDir(): Promise<{ project: string; state: string }> {
  const project = await mkdtemp(join(tmpdir(), "keyway-lock-"));
  dirs.push(project);
  return { project, state: join(project, ".keyway") };
}

afterEach(async () => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe("acquireInstanceLock", () => {
  it("writes this process's id and removes the file on release", async () => {
    const { project, state } = await stateDir();
    const lock = await acquireInstanceLock(state, project);
    expect(await readFile(lock.path, "utf8")).toBe(`${process.pid}\n`);
    lock.release();
    await expect(stat(lock.path)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("refuses while another start holds the folder, naming the folder and its pid", async () => {
    const { project, state } = await stateDir();
    const other = await fakeStart();
    const first = await acquireInstanceLock(state, project);
    await writeFile(first.path, `${other.pid}\n`);
    const error = await acquireInstanceLock(state, project).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AlreadyRunningError);
    expect(String((error as Error).message)).toBe(
      `Keyway is already running in ${project} (pid ${other.pid})`,
    );
    // The holder's lock is left alone.
    expect(await readFile(first.path, "utf8")).toBe(`${other.pid}\n`);
  });

  it("takes over a lock whose process is gone or is not a start", async () => {
    const { project, state } = await stateDir();
    const gone = await fakeStart();
    const exited = new Promise((resolve) => gone.once("exit", resolve));
    gone.kill("SIGKILL");
    await exited;
    const stale = await acquireInstanceLock(state, project);
    await writeFile(stale.path, `${gone.pid}\n`);
    const lock = await acquireInstanceLock(state, project);
    expect(await readFile(lock.path, "utf8")).toBe(`${process.pid}\n`);

    // A live process that is not `pnpm start` (its pid reused after a reboot, say).
    const unrelated = spawn("sleep", ["30"]);
    children.push(unrelated);
    await new Promise((resolve) => unrelated.once("spawn", resolve));
    await writeFile(lock.path, `${unrelated.pid}\n`);
    const again = await acquireInstanceLock(state, project);
    expect(await readFile(again.path, "utf8")).toBe(`${process.pid}\n`);
  });
});
