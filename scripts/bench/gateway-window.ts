/**
 * What else happened on the machine while a `bench:gateway` case was measured, so that a run far
 * off the others says why (SPEC §11's ratio is read from single runs on a shared 2-core VM):
 *
 * - the machine's CPU from `/proc/stat`: busy, idle and steal (time the hypervisor gave the
 *   virtual CPUs to someone else) as shares of the window's CPU capacity;
 * - `otherBusyPercent`: CPU that no process of the benchmark spent (other sessions' work), as a
 *   share of one core, and `controlPlaneBusyPercent`: what the benchmark's own control plane
 *   (this process, PostgreSQL) spent meanwhile;
 * - for a Node proxy: its main thread's CPU against its other threads' (V8's compiler and GC
 *   helpers, libuv's pool), per request — extra background work shows there, not on the main
 *   thread — the part of its CPU spent in the kernel, its page faults, and how often its main
 *   thread slept (the event loop found nothing to do) or was preempted, per request;
 * - a speed probe: a fixed loop timed a few times a second, to compare windows of one run — a
 *   virtual CPU the host slows down (a busy sibling hyperthread, other VMs) shows nowhere else;
 * - inter-processor interrupts per request: on a VM, waking a process on a halted virtual CPU
 *   exits to the hypervisor, and the proxy pays for the wake-ups its socket writes cause.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import { Worker } from "node:worker_threads";

/** Clock ticks (10 ms) by kind, summed over all CPUs. */
interface MachineTicks {
  busy: number;
  idle: number;
  steal: number;
}

function machineTicks(): MachineTicks {
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return {
    busy: (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0),
    idle: (idle ?? 0) + (iowait ?? 0),
    steal: steal ?? 0,
  };
}

/**
 * Inter-processor interrupts so far, all CPUs: rescheduling (waking a task on another CPU) and
 * function calls. On a VM each one that reaches a halted virtual CPU goes through the hypervisor,
 * so their number per request is what makes a cross-CPU wake-up cheap or dear.
 */
function interProcessorInterrupts(): number {
  let total = 0;
  for (const line of readFileSync("/proc/interrupts", "utf8").split("\n")) {
    const match = /^\s*(RES|CAL):((?:\s+\d+)+)/.exec(line);
    if (match === null) continue;
    for (const count of (match[2] ?? "").trim().split(/\s+/)) total += Number(count);
  }
  return total;
}

/** Times the process's main thread went to sleep (`voluntary`) or was preempted. */
function contextSwitches(pid: number): { voluntary: number; involuntary: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const field = (name: string) =>
      Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0);
    return {
      voluntary: field("voluntary_ctxt_switches"),
      involuntary: field("nonvoluntary_ctxt_switches"),
    };
  } catch {
    return { voluntary: 0, involuntary: 0 };
  }
}

/**
 * Ticks of one thread, or of a whole process (`/proc/<pid>/stat`); with `reaped`, also those of
 * its children that ended and were waited for (wrk, once a case is over).
 */
function ticksOf(statPath: string, reaped = false): number {
  try {
    const stat = readFileSync(statPath, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const own = Number(fields[11]) + Number(fields[12]);
    return reaped ? own + Number(fields[13]) + Number(fields[14]) : own;
  } catch {
    return 0;
  }
}

/** `pid` and every process below it. */
function processTree(pid: number): number[] {
  const all = [pid];
  for (let at = 0; at < all.length; at++) {
    const parent = all[at] ?? 0;
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${parent}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const children = readFileSync(`/proc/${parent}/task/${tid}/children`, "utf8").trim();
        if (children !== "") all.push(...children.split(/\s+/).map(Number));
      } catch {
        // The thread has ended.
      }
    }
  }
  return all;
}

/**
 * CPU ticks of this process itself (the orchestration and the control plane it serves) and of
 * the PostgreSQL processes below it: the benchmark's own background work during a window.
 */
function controlPlaneTicks(): number {
  let ticks = ticksOf(`/proc/${process.pid}/stat`);
  for (const pid of processTree(process.pid).slice(1)) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "postgres") {
        ticks += ticksOf(`/proc/${pid}/stat`);
      }
    } catch {
      // Ended.
    }
  }
  return ticks;
}

/** CPU ticks of this process and everything it started, including children already ended. */
export function benchTicks(): number {
  let ticks = 0;
  for (const pid of processTree(process.pid)) ticks += ticksOf(`/proc/${pid}/stat`, true);
  return ticks;
}

interface ProxyTicks {
  main: number;
  others: number;
  /** Kernel-mode ticks of the whole process. */
  system: number;
  /** Minor page faults of the whole process (memory the kernel had to map in). */
  minorFaults: number;
}

/** The main thread's ticks and those of the process's other threads; kernel time, page faults. */
function proxyTicks(pid: number): ProxyTicks {
  let others = 0;
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return { main: 0, others: 0, system: 0, minorFaults: 0 };
  }
  for (const tid of tids) {
    if (tid !== String(pid)) others += ticksOf(`/proc/${pid}/task/${tid}/stat`);
  }
  let system = 0;
  let minorFaults = 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    system = Number(fields[12]);
    minorFaults = Number(fields[7]);
  } catch {
    // Gone.
  }
  return { main: ticksOf(`/proc/${pid}/task/${pid}/stat`), others, system, minorFaults };
}

export interface WindowFacts {
  /** Machine busy CPU, % of the window's capacity (all cores). */
  machineBusyPercent: number;
  machineIdlePercent: number;
  /** Time the hypervisor ran someone else on our virtual CPUs, % of capacity. */
  stealPercent: number;
  /** Busy CPU outside the benchmark's processes, % of one core. */
  otherBusyPercent: number;
  /** The orchestrating process (control plane API, samplers) and PostgreSQL, % of one core. */
  controlPlaneBusyPercent: number;
  /** The Node proxy's main thread and other threads, CPU µs per request (null: not a Node proxy). */
  mainThreadUsPerRequest: number | null;
  otherThreadsUsPerRequest: number | null;
  /** Of the Node proxy's CPU per request, the part spent in the kernel (socket calls, epoll). */
  systemUsPerRequest: number | null;
  /**
   * The speed probe's median during the window, µs (`speedProbeNs`): compare windows of one run;
   * `disturbance` flags one ≥ 1.25× the run's fastest.
   */
  speedProbeUs: number;
  /**
   * The pinned speed probes' medians during the window, µs, one per virtual CPU (index = CPU;
   * empty without `taskset`): `disturbance` flags a window where one CPU ran ≥ 1.25× slower than
   * the other — the same loop, the same moment, so no other window is needed to tell.
   */
  cpuSpeedProbeUs: number[];
  /** `crossCpuRoundTripNs` right after the window (set by the caller; absent: not measured). */
  crossCpuRoundTripNs?: number;
  /** Minor page faults of the Node proxy per request. */
  minorFaultsPerRequest: number | null;
  /** Inter-processor interrupts (rescheduling, function call) on the machine per request. */
  ipisPerRequest: number;
  /** The Node proxy's main thread: sleeps (event loop waiting) and preemptions per request. */
  sleepsPerRequest: number | null;
  preemptionsPerRequest: number | null;
}

/** Keeps the probe loop's result observable, so the JIT cannot drop the loop. */
let _probeSink = 0;

/**
 * Nanoseconds for a fixed integer loop (~0.3 ms): how fast this virtual CPU runs right now. Run
 * in the orchestrating process a few times per second during a window: a virtual CPU slowed by
 * the host (a busy sibling hyperthread, another VM, frequency) takes longer for the same loop,
 * which steal time does not show. The window keeps the median; preemption only lengthens some
 * samples.
 */
function speedProbeNs(): number {
  const started = process.hrtime.bigint();
  let x = 0x9e3779b9;
  for (let i = 0; i < 200_000; i++) x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + i) | 0;
  _probeSink ^= x;
  return Number(process.hrtime.bigint() - started);
}

function cpuCount(): number {
  return Math.max(1, readFileSync("/proc/stat", "utf8").match(/^cpu\d+ /gm)?.length ?? 1);
}

function medianOf(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/**
 * The loop of `speedProbeNs` in a child process pinned to one virtual CPU, timed four times a
 * second in CPU time (a preemption by the proxy sharing the CPU does not count). `--jitless`: the
 * interpreter runs it at one speed in every process (optimized, the orchestrator's probe reads
 * 0.35 or 1.3 ms from run to run, by what the JIT made of it); 20,000 iterations, about 0.5 ms,
 * 0.2 % of the CPU it shares with the proxy.
 */
const PINNED_PROBE = `
let sink = 0;
setInterval(() => {
  const started = process.cpuUsage();
  let x = 0x9e3779b9;
  for (let i = 0; i < 20000; i++) x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + i) | 0;
  sink ^= x;
  const used = process.cpuUsage(started);
  process.stdout.write(String((used.user + used.system) * 1000) + "\\n");
}, 250);`;

/**
 * One pinned probe per virtual CPU. The host can slow one virtual CPU for many seconds (a busy
 * sibling hyperthread): on 2026-12-06 one CPU's pinned probe read 1.9–2.0 ms against the other's
 * 0.95–1.0 ms for 5–30 s at a time, with 0 % steal, and a proxy that ran there cost up to 1.7× its
 * CPU per request. The orchestrator's own probe runs wherever the scheduler puts it and misses it.
 */
function startPinnedProbes(cores: number): { stop(): number[] } {
  const samples: number[][] = [];
  const children: ChildProcess[] = [];
  for (let cpu = 0; cpu < cores; cpu++) {
    const own: number[] = [];
    samples.push(own);
    const child = spawn(
      "taskset",
      ["-c", String(cpu), process.execPath, "--jitless", "-e", PINNED_PROBE],
      {
        stdio: ["ignore", "pipe", "ignore"],
      },
    );
    // No `taskset`: no pinned figures (the window reports an empty list).
    child.on("error", () => {});
    let pending = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      const lines = (pending + chunk.toString("utf8")).split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) if (line !== "") own.push(Number(line));
    });
    children.push(child);
  }
  return {
    stop() {
      for (const child of children) child.kill();
      return samples.every((own) => own.length > 0)
        ? samples.map((own) => medianOf(own) / 1000)
        : [];
    },
  };
}

export interface WindowProbe {
  /** Call when the window ends, with the requests served in it. */
  end(requests: number): WindowFacts;
}

/**
 * Starts watching a measured window. The benchmark's processes are this one and every process
 * below it (proxies, upstream, load generator, PostgreSQL); `nodeProxyPid`: the Node proxy under
 * test, whose threads are told apart.
 */
export function startWindow(nodeProxyPid?: number): WindowProbe {
  const machineBefore = machineTicks();
  const benchBefore = benchTicks();
  const controlPlaneBefore = controlPlaneTicks();
  const threadsBefore = nodeProxyPid === undefined ? null : proxyTicks(nodeProxyPid);
  const ipisBefore = interProcessorInterrupts();
  const switchesBefore = nodeProxyPid === undefined ? null : contextSwitches(nodeProxyPid);
  // Warmed up so that the first sample measures optimized code, then 4 samples a second.
  for (let i = 0; i < 20; i++) speedProbeNs();
  const speedSamples: number[] = [];
  const sampler = setInterval(() => speedSamples.push(speedProbeNs()), 250);
  const pinned = startPinnedProbes(cpuCount());
  return {
    end(requests) {
      clearInterval(sampler);
      const cpuSpeedProbeUs = pinned.stop();
      if (speedSamples.length === 0) speedSamples.push(speedProbeNs());
      const machine = machineTicks();
      const busy = machine.busy - machineBefore.busy;
      const idle = machine.idle - machineBefore.idle;
      const steal = machine.steal - machineBefore.steal;
      const capacity = Math.max(1, busy + idle + steal);
      const cores = cpuCount();
      const bench = benchTicks() - benchBefore;
      const controlPlane = controlPlaneTicks() - controlPlaneBefore;
      const threads = nodeProxyPid === undefined ? null : proxyTicks(nodeProxyPid);
      const ipis = interProcessorInterrupts() - ipisBefore;
      const switches = nodeProxyPid === undefined ? null : contextSwitches(nodeProxyPid);
      const perRequest = (ticks: number) => (ticks * 10_000) / Math.max(1, requests);
      return {
        machineBusyPercent: (100 * busy) / capacity,
        machineIdlePercent: (100 * idle) / capacity,
        stealPercent: (100 * steal) / capacity,
        otherBusyPercent: (100 * cores * Math.max(0, busy - bench)) / capacity,
        controlPlaneBusyPercent: (100 * cores * controlPlane) / capacity,
        mainThreadUsPerRequest:
          threads && threadsBefore ? perRequest(threads.main - threadsBefore.main) : null,
        otherThreadsUsPerRequest:
          threads && threadsBefore ? perRequest(threads.others - threadsBefore.others) : null,
        systemUsPerRequest:
          threads && threadsBefore ? perRequest(threads.system - threadsBefore.system) : null,
        minorFaultsPerRequest:
          threads && threadsBefore
            ? (threads.minorFaults - threadsBefore.minorFaults) / Math.max(1, requests)
            : null,
        ipisPerRequest: ipis / Math.max(1, requests),
        speedProbeUs: medianOf(speedSamples) / 1000,
        cpuSpeedProbeUs,
        sleepsPerRequest:
          switches && switchesBefore
            ? (switches.voluntary - switchesBefore.voluntary) / Math.max(1, requests)
            : null,
        preemptionsPerRequest:
          switches && switchesBefore
            ? (switches.involuntary - switchesBefore.involuntary) / Math.max(1, requests)
            : null,
      };
    },
  };
}

/** The mean of a window's pinned speed probes, µs (undefined without them). */
export function pinnedProbeUs(window: WindowFacts): number | undefined {
  const probes = window.cpuSpeedProbeUs;
  return probes.length === 0 ? undefined : probes.reduce((a, b) => a + b, 0) / probes.length;
}

/** The run's fastest window by each speed probe, what `disturbance` compares a window with. */
export interface RunFastest {
  speedProbeUs: number;
  /** Undefined when no window has pinned probes. */
  pinnedProbeUs?: number;
}

export function runFastest(windows: readonly WindowFacts[]): RunFastest {
  const pinned = windows.flatMap((window) => pinnedProbeUs(window) ?? []);
  return {
    speedProbeUs: Math.min(...windows.map((window) => window.speedProbeUs)),
    ...(pinned.length === 0 ? {} : { pinnedProbeUs: Math.min(...pinned) }),
  };
}

/**
 * Why a measured window is not comparable with a quiet one, or null. On the shared 2-core VM
 * another session's work or the hypervisor takes CPU from the proxy mid-window: it is then
 * preempted, handles fewer requests per event-loop turn and costs more CPU per request (gateway
 * 136 µs against 88 µs with a core's worth of other work, 2026-12-06), so the run's ratios say
 * little. Thresholds: above what an undisturbed window shows (≤ 20 % "other": kernel threads
 * such as ksoftirqd carrying the benchmark's own loopback traffic are not below this process).
 * Against the run's fastest window the pinned probes are compared when there are any: the
 * unpinned probe's median moves with the JIT (350 µs ↔ 1.3 ms in one run), while a whole-machine
 * slow phase (both virtual CPUs ≈ 1.6× slower for a window, 2026-12-06) passes the per-window check
 * of one CPU against the other and shows only here.
 */
export function disturbance(window: WindowFacts, fastest?: RunFastest): string | null {
  const reasons: string[] = [];
  const pinned = pinnedProbeUs(window);
  if (fastest?.pinnedProbeUs !== undefined && pinned !== undefined) {
    // Both virtual CPUs slow at once (a whole-machine slow phase) shows only against other windows.
    if (pinned >= 1.25 * fastest.pinnedProbeUs) {
      reasons.push(
        `the virtual CPUs ran ${(pinned / fastest.pinnedProbeUs).toFixed(2)}× slower than in the run's fastest window (pinned speed probes)`,
      );
    }
  } else if (fastest !== undefined && window.speedProbeUs >= 1.25 * fastest.speedProbeUs) {
    reasons.push(
      `the CPU ran ${(window.speedProbeUs / fastest.speedProbeUs).toFixed(2)}× slower than in the run's fastest window (speed probe)`,
    );
  }
  const slowestCpu = Math.max(...window.cpuSpeedProbeUs);
  const fastestCpu = Math.min(...window.cpuSpeedProbeUs);
  if (window.cpuSpeedProbeUs.length > 1 && slowestCpu >= 1.25 * fastestCpu) {
    reasons.push(
      `virtual CPU ${window.cpuSpeedProbeUs.indexOf(slowestCpu)} ran ${(slowestCpu / fastestCpu).toFixed(2)}× slower than CPU ${window.cpuSpeedProbeUs.indexOf(fastestCpu)} (pinned speed probes)`,
    );
  }
  if (window.otherBusyPercent > 30) {
    reasons.push(`other work used ${window.otherBusyPercent.toFixed(0)} % of a core`);
  }
  if (window.stealPercent > 2) reasons.push(`${window.stealPercent.toFixed(1)} % steal`);
  if (window.controlPlaneBusyPercent > 30) {
    reasons.push(`the bench's control plane used ${window.controlPlaneBusyPercent.toFixed(0)} %`);
  }
  return reasons.length === 0 ? null : reasons.join(", ");
}

/**
 * Round trip of a cache line between two threads spinning on two CPUs, ns (fastest batch of
 * ~20 ms of ping-pong): what a hand-over between the two virtual CPUs costs in the hardware right
 * now. The host may place the two virtual CPUs on cores that share a cache, or not (another L3
 * domain of the EPYC); the guest sees no sign of it but this, and every request of the benchmark
 * crosses between them. Run between cases (it keeps both CPUs busy for its duration); only
 * meaningful when nothing else runs: a batch that had to wait for a CPU reads in milliseconds.
 */
export async function crossCpuRoundTripNs(durationMs = 20): Promise<number> {
  const flags = new Int32Array(new SharedArrayBuffer(8));
  // Slot 0: odd = ping from here, even = pong from the worker. Slot 1: 1 = stop.
  const worker = new Worker(
    `const { workerData } = require("node:worker_threads");
     const flags = new Int32Array(workerData);
     while (Atomics.load(flags, 1) === 0) {
       const v = Atomics.load(flags, 0);
       if ((v & 1) === 1) Atomics.store(flags, 0, v + 1);
     }`,
    { eval: true, workerData: flags.buffer },
  );
  await once(worker, "online");
  const samples: number[] = [];
  const until = performance.now() + durationMs;
  while (performance.now() < until) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < 50; i++) {
      const ping = Atomics.add(flags, 0, 1) + 1;
      while (Atomics.load(flags, 0) === ping) {
        // Spin until the worker answers.
      }
    }
    samples.push(Number(process.hrtime.bigint() - started) / 50);
  }
  Atomics.store(flags, 1, 1);
  await once(worker, "exit");
  // The fastest batch: both threads running at once (a batch that waited for a CPU is slower).
  return Math.min(...samples);
}
