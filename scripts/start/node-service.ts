import { spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { isServiceReadyMessage } from "@keyway/config";
import { SERVICE_NODE_FLAGS, type Service } from "../build";
import {
  describeExit,
  type ProcessExit,
  type RunningProcess,
  type SupervisedProcess,
} from "./supervisor";

const READY_WITHIN_MS = 60_000;
const STOP_WITHIN_MS = 10_000;

export interface NodeServiceOptions {
  name: Service;
  /** The service's bundle, run with plain `node` (and its `SERVICE_NODE_FLAGS`) as deployed. */
  bundle: string;
  env: NodeJS.ProcessEnv;
  /** Polled after the service reports ready, until it answers 200 (the gateway's `/readyz`). */
  readyUrl?: string;
  /** Started only once these are running again after a crash. */
  after?: readonly string[];
}

/**
 * A service entry (`control-plane-api`, `data-plane-gateway`) as a supervised child process. Its
 * log lines go to this terminal. It counts as ready when *it* says so over the IPC channel
 * (`runServiceProcess` reports once it listens), never because something answers on its port:
 * another program on that port would answer too. The channel also lets the service stop itself
 * if this process dies without stopping it.
 */
export function nodeService(options: NodeServiceOptions): SupervisedProcess {
  return {
    name: options.name,
    ...(options.after ? { after: options.after } : {}),
    async start(abort) {
      const child = spawn(process.execPath, [...SERVICE_NODE_FLAGS[options.name], options.bundle], {
        env: options.env,
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      const exited = new Promise<ProcessExit>((resolve) => {
        child.once("exit", (code, signal) => resolve({ code, signal }));
      });
      const running: RunningProcess = {
        pid: child.pid,
        exited,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
          const forced = setTimeout(() => child.kill("SIGKILL"), STOP_WITHIN_MS);
          await exited;
          clearTimeout(forced);
        },
      };
      const reported = new Promise<void>((resolve) => {
        const onMessage = (message: unknown) => {
          if (!isServiceReadyMessage(message)) return;
          child.off("message", onMessage);
          resolve();
        };
        child.on("message", onMessage);
      });
      try {
        await untilReady(() => reported, exited, abort);
        const { readyUrl } = options;
        if (readyUrl !== undefined) {
          await untilReady((done) => answers200(readyUrl, done), exited, abort);
        }
        return running;
      } catch (error) {
        await running.stop();
        throw error;
      }
    },
  };
}

/**
 * Runs `check` until it resolves; fails if the process ends first, Keyway stops, or a minute
 * passes. `check` gets a signal that fires once the wait is over, whichever way.
 */
async function untilReady(
  check: (done: AbortSignal) => Promise<void>,
  exited: Promise<ProcessExit>,
  abort: AbortSignal,
): Promise<void> {
  const done = new AbortController();
  const failed = Promise.race([
    exited.then((exit) => {
      throw new Error(`exited (${describeExit(exit)}) before it was ready`);
    }),
    sleep(READY_WITHIN_MS, undefined, { signal: done.signal }).then(() => {
      throw new Error(`was not ready within ${READY_WITHIN_MS / 1000} s`);
    }),
    new Promise<never>((_, reject) => {
      const stopped = () => reject(new Error("was stopped while starting"));
      if (abort.aborted) stopped();
      else abort.addEventListener("abort", stopped, { once: true, signal: done.signal });
    }),
  ]);
  try {
    await Promise.race([check(done.signal), failed]);
  } finally {
    done.abort();
    failed.catch(() => {});
  }
}

/** Resolves once `url` answers 200; polls until `done` fires. */
async function answers200(url: string, done: AbortSignal): Promise<void> {
  while (!done.aborted) {
    const ok = await fetch(url, { signal: done }).then(
      (response) => response.status === 200,
      () => false,
    );
    if (ok) return;
    await sleep(100, undefined, { signal: done }).catch(() => {});
  }
}
