import { describe, expect, it } from "vitest";
import {
  type ProcessExit,
  type RunningProcess,
  type SupervisedProcess,
  Supervisor,
} from "./supervisor";

/**
 * Processes as the supervisor sees them, in memory: a test ends one (`crash`) and decides whether
 * its next start succeeds. The real ones (node services, PostgreSQL) are exercised by
 * tests/system/start-and-walkthrough.test.ts.
 */
class TestProcess implements SupervisedProcess {
  readonly starts: number[] = [];
  running: (RunningProcess & { end(exit: ProcessExit): void }) | undefined;
  stopped = 0;
  /** Starts from now on fail with this message. */
  failWith: string | undefined;
  private nextPid = 100;

  constructor(
    readonly name: string,
    private readonly log: string[],
    readonly after?: readonly string[],
  ) {}

  async start(): Promise<RunningProcess> {
    this.log.push(`start ${this.name}`);
    if (this.failWith !== undefined) throw new Error(this.failWith);
    let end: (exit: ProcessExit) => void = () => {};
    const exited = new Promise<ProcessExit>((resolve) => {
      end = resolve;
    });
    const pid = this.nextPid++;
    this.running = {
      pid,
      exited,
      end,
      stop: async () => {
        this.stopped += 1;
        this.log.push(`stop ${this.name}`);
        end({ code: 0, signal: null });
      },
    };
    return this.running;
  }

  crash(): void {
    this.running?.end({ code: null, signal: "SIGKILL" });
  }
}

const fast = {
  policy: {
    initialDelayMs: 10,
    maxDelayMs: 40,
    stableAfterMs: 60_000,
    maxCrashes: 3,
    crashWindowMs: 60_000,
  },
  stopRaceMs: 1,
};

async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe("Supervisor", () => {
  it("restarts a crashed process with backoff and announces it", async () => {
    const lines: string[] = [];
    const supervisor = new Supervisor({
      ...fast,
      announce: (l) => lines.push(l),
      giveUp: () => {},
    });
    const api = new TestProcess("api", []);
    await supervisor.start(api);
    api.crash();
    await until("the restart", () => lines.length === 2);
    expect(lines).toEqual([
      "api exited (signal SIGKILL); restarting it in 0.01 s",
      "api is running again (pid 101)",
    ]);
    api.crash();
    await until("the second restart", () => lines.length === 4);
    expect(lines[2]).toBe("api exited (signal SIGKILL); restarting it in 0.02 s");
    await supervisor.stop();
  });

  it("restarts a process only once what it needs runs again", async () => {
    const log: string[] = [];
    const lines: string[] = [];
    const supervisor = new Supervisor({
      ...fast,
      // The database fails to restart for a while here; that must not count as giving up.
      policy: { ...fast.policy, maxCrashes: 1000 },
      announce: (l) => lines.push(l),
      giveUp: () => {},
    });
    const database = new TestProcess("database", log);
    const api = new TestProcess("api", log, ["database"]);
    await supervisor.start(database);
    await supervisor.start(api);
    database.failWith = "did not start";
    database.crash();
    await until("the database's failed restart", () =>
      lines.some((l) => l.startsWith("database did not start")),
    );
    api.crash();
    // The API waits while the database is down …
    await until("the API's restart announcement", () =>
      lines.some((l) => l.startsWith("api exited")),
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(log.filter((entry) => entry === "start api")).toHaveLength(1);
    // … and starts once the database is back.
    database.failWith = undefined;
    await until("the API back", () => lines.includes("api is running again (pid 101)"));
    const order = log.filter((entry) => entry.startsWith("start"));
    expect(order.lastIndexOf("start database")).toBeLessThan(order.lastIndexOf("start api"));
    await supervisor.stop();
  });

  it("gives up on a process that keeps crashing, naming its last failure", async () => {
    const reasons: string[] = [];
    const supervisor = new Supervisor({
      ...fast,
      announce: () => {},
      giveUp: (r) => reasons.push(r),
    });
    const api = new TestProcess("api", []);
    await supervisor.start(api);
    api.failWith = "exited (exit code 1) before it was ready";
    api.crash();
    await until("giving up", () => reasons.length === 1);
    expect(reasons).toEqual([
      "api crashed 3 times within 60 s (last: exited (exit code 1) before it was ready); giving up",
    ]);
    await supervisor.stop();
  });

  it("stops everything newest first, and restarts nothing once stopping", async () => {
    const log: string[] = [];
    const lines: string[] = [];
    const supervisor = new Supervisor({
      ...fast,
      stopRaceMs: 20,
      announce: (l) => lines.push(l),
      giveUp: () => {},
    });
    const database = new TestProcess("database", log);
    const api = new TestProcess("api", log);
    await supervisor.start(database);
    await supervisor.start(api);
    // Ctrl+C: the processes end by themselves while the supervisor is asked to stop.
    api.crash();
    await supervisor.stop();
    expect(log.filter((entry) => entry.startsWith("stop"))).toEqual(["stop api", "stop database"]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(lines).toEqual([]);
    expect(log.filter((entry) => entry === "start api")).toHaveLength(1);
  });

  it("reports a first start that fails with the process's name, and does not retry it", async () => {
    const log: string[] = [];
    const supervisor = new Supervisor({ ...fast, announce: () => {}, giveUp: () => {} });
    const api = new TestProcess("api", log);
    api.failWith = "exited (exit code 1) before it was ready";
    await expect(supervisor.start(api)).rejects.toThrow(
      "api exited (exit code 1) before it was ready",
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(log).toEqual(["start api"]);
  });
});
