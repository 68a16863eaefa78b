import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  benchTicks,
  crossCpuRoundTripNs,
  disturbance,
  runFastest,
  startWindow,
  type WindowFacts,
} from "./gateway-window";

const quiet: WindowFacts = {
  machineBusyPercent: 80,
  machineIdlePercent: 20,
  stealPercent: 0,
  otherBusyPercent: 3,
  controlPlaneBusyPercent: 2,
  mainThreadUsPerRequest: 80,
  otherThreadsUsPerRequest: 4,
  systemUsPerRequest: 25,
  minorFaultsPerRequest: 0.1,
  ipisPerRequest: 0.5,
  speedProbeUs: 300,
  cpuSpeedProbeUs: [980, 1010],
  sleepsPerRequest: 0.02,
  preemptionsPerRequest: 0.1,
};

/**
 * Spins until this process has used `ms` of CPU time — not wall time: on a loaded machine a
 * 200 ms wall-clock spin may get half a core, and the figure below would then depend on load.
 */
function busyFor(ms: number): void {
  const start = process.cpuUsage();
  for (;;) {
    const used = process.cpuUsage(start);
    if ((used.user + used.system) / 1000 >= ms) return;
  }
}

describe("startWindow", () => {
  it("charges a Node process's main-thread CPU to it, per request", () => {
    const probe = startWindow(process.pid);
    busyFor(200);
    const facts = probe.end(100);
    expect(facts.speedProbeUs).toBeGreaterThan(0);
    // 200 ms over 100 requests is ~2,000 µs each; ticks are 10 ms, and the runner's own threads add.
    expect(facts.mainThreadUsPerRequest).toBeGreaterThanOrEqual(1_000);
    expect(facts.otherThreadsUsPerRequest).not.toBeNull();
    expect(facts.machineBusyPercent + facts.machineIdlePercent + facts.stealPercent).toBeCloseTo(
      100,
      5,
    );
  });

  it("counts CPU of processes this one started, also once they have ended", async () => {
    const before = benchTicks();
    // A child that spins for 300 ms and is waited for, like wrk at the end of a case.
    const child = spawn(process.execPath, [
      "-e",
      "const t = Date.now() + 300; while (Date.now() < t) {}",
    ]);
    await once(child, "exit");
    // 10 ms ticks: the child's ~30, which are gone from /proc once it has ended.
    expect(benchTicks() - before).toBeGreaterThanOrEqual(25);
  });
});

describe("startWindow's pinned speed probes", () => {
  it("time the same loop on every virtual CPU during the window", async () => {
    const probe = startWindow();
    await new Promise((r) => setTimeout(r, 1500));
    const facts = probe.end(1);
    const cores = readFileSync("/proc/stat", "utf8").match(/^cpu\d+ /gm)?.length ?? 0;
    expect(facts.cpuSpeedProbeUs).toHaveLength(cores);
    for (const us of facts.cpuSpeedProbeUs) expect(us).toBeGreaterThan(0);
  });
});

describe("disturbance", () => {
  it("passes a quiet window", () => {
    expect(disturbance(quiet)).toBeNull();
  });

  it("names a window whose virtual CPUs both ran slower than in the run's fastest (pinned probes)", () => {
    // 2026-12-06, Node 20: the gateway's window at 1,114/1,079 µs, nginx's at 673/676.
    const nginx = { ...quiet, cpuSpeedProbeUs: [673, 676] };
    const gateway = { ...quiet, cpuSpeedProbeUs: [1114, 1079] };
    const fastest = runFastest([nginx, gateway]);
    expect(fastest.pinnedProbeUs).toBeCloseTo(674.5);
    expect(disturbance(nginx, fastest)).toBeNull();
    expect(disturbance(gateway, fastest)).toBe(
      "the virtual CPUs ran 1.63× slower than in the run's fastest window (pinned speed probes)",
    );
    // With pinned probes the unpinned one (it moves with the JIT) is not compared.
    expect(disturbance({ ...nginx, speedProbeUs: 1200 }, fastest)).toBeNull();
  });

  it("falls back to the unpinned speed probe without pinned ones", () => {
    const plain = { ...quiet, cpuSpeedProbeUs: [] };
    const fastest = runFastest([plain, { ...plain, speedProbeUs: 290 }]);
    expect(fastest).toEqual({ speedProbeUs: 290 });
    expect(disturbance(plain, fastest)).toBeNull();
    expect(disturbance({ ...plain, speedProbeUs: 450 }, { speedProbeUs: 300 })).toBe(
      "the CPU ran 1.50× slower than in the run's fastest window (speed probe)",
    );
  });

  it("names a window where one virtual CPU ran slower than the other", () => {
    expect(disturbance({ ...quiet, cpuSpeedProbeUs: [980, 1100] })).toBeNull();
    expect(disturbance({ ...quiet, cpuSpeedProbeUs: [1950, 975] })).toBe(
      "virtual CPU 0 ran 2.00× slower than CPU 1 (pinned speed probes)",
    );
  });

  it("names other work, steal and the bench's own control plane", () => {
    expect(disturbance({ ...quiet, otherBusyPercent: 129 })).toBe(
      "other work used 129 % of a core",
    );
    expect(disturbance({ ...quiet, stealPercent: 4.2, controlPlaneBusyPercent: 40 })).toBe(
      "4.2 % steal, the bench's control plane used 40 %",
    );
  });
});

describe("crossCpuRoundTripNs", () => {
  it("measures a positive round trip and stops its worker", async () => {
    const ns = await crossCpuRoundTripNs(5);
    expect(ns).toBeGreaterThan(0);
  });
});
