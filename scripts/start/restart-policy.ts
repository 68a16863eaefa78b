/**
 * When `pnpm start` restarts a process that ended without being asked to, and when it gives up
 * (SPEC §6.7). The delay starts at `initialDelayMs` and doubles with every crash up to
 * `maxDelayMs`; a process that ran for `stableAfterMs` before crashing starts again from the
 * initial delay. `maxCrashes` crashes within `crashWindowMs` mean restarting will not help.
 * Times are milliseconds on any monotonic scale; the caller passes them in.
 */
export interface RestartPolicyOptions {
  initialDelayMs: number;
  maxDelayMs: number;
  stableAfterMs: number;
  maxCrashes: number;
  crashWindowMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicyOptions = {
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  stableAfterMs: 60_000,
  maxCrashes: 5,
  crashWindowMs: 60_000,
};

export type RestartDecision =
  | { restart: true; delayMs: number }
  | { restart: false; crashes: number; windowMs: number };

export class RestartPolicy {
  private crashTimes: number[] = [];
  private unstableCrashes = 0;

  constructor(private readonly options: RestartPolicyOptions = DEFAULT_RESTART_POLICY) {}

  /** Records a crash at `now` of a run that lasted `ranForMs`, and says what to do. */
  onCrash(now: number, ranForMs: number): RestartDecision {
    const { initialDelayMs, maxDelayMs, stableAfterMs, maxCrashes, crashWindowMs } = this.options;
    if (ranForMs >= stableAfterMs) this.unstableCrashes = 0;
    this.unstableCrashes += 1;
    this.crashTimes = [...this.crashTimes.filter((t) => now - t < crashWindowMs), now];
    if (this.crashTimes.length >= maxCrashes) {
      return { restart: false, crashes: this.crashTimes.length, windowMs: crashWindowMs };
    }
    const delayMs = Math.min(initialDelayMs * 2 ** (this.unstableCrashes - 1), maxDelayMs);
    return { restart: true, delayMs };
  }
}
