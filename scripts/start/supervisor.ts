import { setTimeout as sleep } from "node:timers/promises";
import { DEFAULT_RESTART_POLICY, RestartPolicy, type RestartPolicyOptions } from "./restart-policy";

/** How a process ended: its exit code, or the signal that ended it. */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export function describeExit(exit: ProcessExit): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}

/** A started process, as the supervisor sees it. */
export interface RunningProcess {
  readonly pid: number | undefined;
  /** Settles when the process has ended, for whatever reason. */
  readonly exited: Promise<ProcessExit>;
  /** Stops it and waits until it has ended; done at once if it has. */
  stop(): Promise<void>;
}

export interface SupervisedProcess {
  /** As the user knows it: `PostgreSQL`, `control-plane-api`. */
  readonly name: string;
  /**
   * Starts the process and resolves once it is ready; rejects if it ends or fails first (having
   * cleaned up), with a message that reads after the name: "exited (exit code 1) before it was
   * ready". `abort` fires when Keyway stops meanwhile: the start should give up promptly.
   */
  start(abort: AbortSignal): Promise<RunningProcess>;
  /** What must be running again before this one is restarted (its dependencies). */
  readonly after?: readonly string[];
}

export interface SupervisorOptions {
  /** One line for the terminal: a crash and its restart, a process back up. */
  announce(line: string): void;
  /** A process keeps crashing; `reason` says which and how. The caller stops Keyway. */
  giveUp(reason: string): void;
  policy?: RestartPolicyOptions;
  /** Milliseconds on a monotonic scale. */
  now?: () => number;
  /** How long an exit waits before it counts as a crash (`STOP_RACE_MS`). */
  stopRaceMs?: number;
}

/**
 * How long an exit waits before it counts as a crash. Ctrl+C sends SIGINT to every process in
 * the terminal's group at once: PostgreSQL and the services stop themselves while this process's
 * own handler starts stopping Keyway; an exit seen in that moment is part of the stop.
 */
const STOP_RACE_MS = 250;

interface Component {
  readonly process: SupervisedProcess;
  readonly policy: RestartPolicy;
  current?: RunningProcess;
  /** The start under way, if any; settles with the process (or undefined if it failed). */
  starting?: Promise<RunningProcess | undefined>;
  /** Settles when the component is running; replaced when it goes down. */
  running: Promise<void>;
  markRunning(): void;
}

/**
 * What `pnpm start` runs, supervised (SPEC §6.7): a process that ends without being asked to is
 * restarted with backoff (`RestartPolicy`), each restart announced with how the process ended;
 * one that keeps crashing makes the supervisor give up. A restart waits for the processes the
 * crashed one needs (`after`). `stop()` stops everything, newest first.
 */
export class Supervisor {
  private readonly components: Component[] = [];
  private readonly stopController = new AbortController();
  private stopped: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(private readonly options: SupervisorOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  get stopping(): boolean {
    return this.stopController.signal.aborted;
  }

  /**
   * Starts `supervised` for the first time and supervises it from then on. A first start that fails
   * is not retried: it rejects (message: the name and what happened), and the caller reports it
   * and stops Keyway.
   */
  async start(supervised: SupervisedProcess): Promise<RunningProcess> {
    let markRunning = () => {};
    const component: Component = {
      process: supervised,
      policy: new RestartPolicy(this.options.policy ?? DEFAULT_RESTART_POLICY),
      running: new Promise((resolve) => {
        markRunning = resolve;
      }),
      markRunning: () => markRunning(),
    };
    this.components.push(component);
    const running = await this.launch(component).catch((error: unknown) => {
      const failure = error instanceof Error ? error.message : String(error);
      throw new Error(`${supervised.name} ${failure}`, { cause: error });
    });
    void this.supervise(component, running);
    return running;
  }

  /** Stops every process, newest first; later calls wait for the same stop. */
  stop(): Promise<void> {
    this.stopped ??= this.stopAll();
    return this.stopped;
  }

  private async stopAll(): Promise<void> {
    this.stopController.abort();
    for (const component of [...this.components].reverse()) {
      await component.starting;
      await component.current?.stop();
    }
  }

  private async launch(component: Component): Promise<RunningProcess> {
    const starting = component.process.start(this.stopController.signal);
    component.starting = starting.then(
      (running) => {
        component.current = running;
        return running;
      },
      () => undefined,
    );
    const running = await starting;
    component.markRunning();
    return running;
  }

  private async supervise(component: Component, first: RunningProcess): Promise<void> {
    const { name, after = [] } = component.process;
    let running = first;
    let startedAt = this.now();
    for (;;) {
      // What went wrong last, as a phrase after the name: "exited (signal SIGKILL)".
      let failure = `exited (${describeExit(await running.exited)})`;
      this.markDown(component);
      for (;;) {
        if (!(await this.pause(this.options.stopRaceMs ?? STOP_RACE_MS))) return;
        const decision = component.policy.onCrash(this.now(), this.now() - startedAt);
        if (!decision.restart) {
          const within = `${decision.crashes} times within ${decision.windowMs / 1000} s`;
          this.options.giveUp(`${name} crashed ${within} (last: ${failure}); giving up`);
          return;
        }
        this.options.announce(`${name} ${failure}; restarting it in ${decision.delayMs / 1000} s`);
        if (!(await this.pause(decision.delayMs))) return;
        for (const dependency of after) {
          await Promise.race([this.componentNamed(dependency)?.running, this.stopRequested()]);
        }
        if (this.stopping) return;
        startedAt = this.now();
        try {
          running = await this.launch(component);
          break;
        } catch (error) {
          if (this.stopping) return;
          failure = error instanceof Error ? error.message : String(error);
        }
      }
      this.options.announce(`${name} is running again (pid ${running.pid})`);
    }
  }

  private markDown(component: Component): void {
    component.running = new Promise((resolve) => {
      component.markRunning = resolve;
    });
  }

  private componentNamed(name: string): Component | undefined {
    return this.components.find((component) => component.process.name === name);
  }

  /** Waits `ms`; false if Keyway is stopping (then at once). */
  private async pause(ms: number): Promise<boolean> {
    await sleep(ms, undefined, { signal: this.stopController.signal }).catch(() => {});
    return !this.stopping;
  }

  private stopRequested(): Promise<void> {
    const signal = this.stopController.signal;
    return new Promise((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener("abort", () => resolve(), { once: true });
    });
  }
}
