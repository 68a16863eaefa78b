import { describe, expect, it } from "vitest";
import { RestartPolicy } from "./restart-policy";

describe("RestartPolicy", () => {
  it("doubles the delay from 0.5 s up to 30 s while crashes stay apart", () => {
    const policy = new RestartPolicy();
    const delays: number[] = [];
    let now = 0;
    for (let crash = 0; crash < 9; crash++) {
      // Each run lasts 20 s: not stable, and never 5 crashes within a minute.
      now += 20_000;
      const decision = policy.onCrash(now, 20_000);
      if (!decision.restart) throw new Error(`gave up at crash ${crash + 1}`);
      delays.push(decision.delayMs);
      now += decision.delayMs;
    }
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  });

  it("starts again from 0.5 s after a run that lasted a minute", () => {
    const policy = new RestartPolicy();
    expect(policy.onCrash(1_000, 1_000)).toEqual({ restart: true, delayMs: 500 });
    expect(policy.onCrash(2_000, 500)).toEqual({ restart: true, delayMs: 1000 });
    expect(policy.onCrash(200_000, 60_000)).toEqual({ restart: true, delayMs: 500 });
  });

  it("gives up at the fifth crash within a minute", () => {
    const policy = new RestartPolicy();
    const times = [0, 1_000, 3_000, 7_000];
    for (const t of times) expect(policy.onCrash(t, 100).restart).toBe(true);
    expect(policy.onCrash(59_999, 100)).toEqual({ restart: false, crashes: 5, windowMs: 60_000 });
  });

  it("forgets crashes older than a minute", () => {
    const policy = new RestartPolicy();
    for (const t of [0, 10_000, 20_000, 30_000]) expect(policy.onCrash(t, 100).restart).toBe(true);
    // The crash at 0 s is more than a minute old: four within the window, keep going.
    expect(policy.onCrash(60_000, 100).restart).toBe(true);
  });
});
