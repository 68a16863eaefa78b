import { describe, expect, it } from "vitest";
import { DELIVERY_SCHEDULE_MS, MAX_DELIVERY_ATTEMPTS, nextAttemptAt } from "./retry-schedule";

const failedAt = new Date("2026-03-01T12:00:00Z");
const at = (ms: number) => new Date(failedAt.getTime() + ms);
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

describe("the delivery retry schedule (SPEC §8)", () => {
  it("is: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h", () => {
    expect(DELIVERY_SCHEDULE_MS).toEqual([
      0,
      5 * SECOND,
      5 * MINUTE,
      30 * MINUTE,
      2 * HOUR,
      5 * HOUR,
      10 * HOUR,
      10 * HOUR,
    ]);
    expect(MAX_DELIVERY_ATTEMPTS).toBe(8);
  });

  it("waits the schedule's time after each failed attempt, without jitter at the midpoint", () => {
    const middle = () => 0.5;
    expect(
      [1, 2, 3, 4, 5, 6, 7].map((made) => nextAttemptAt(made, failedAt, middle)?.getTime()),
    ).toEqual(
      [5 * SECOND, 5 * MINUTE, 30 * MINUTE, 2 * HOUR, 5 * HOUR, 10 * HOUR, 10 * HOUR].map((ms) =>
        at(ms).getTime(),
      ),
    );
  });

  it("spreads each wait by up to 10 % either way", () => {
    expect(nextAttemptAt(1, failedAt, () => 0)).toEqual(at(4_500));
    expect(nextAttemptAt(1, failedAt, () => 0.999_999)).toEqual(at(5_500));
    expect(nextAttemptAt(4, failedAt, () => 0.25)).toEqual(at(2 * HOUR * 0.95));
  });

  it("has nothing after the eighth attempt, nor after replayed attempts beyond it", () => {
    expect(nextAttemptAt(8, failedAt, Math.random)).toBeUndefined();
    expect(nextAttemptAt(9, failedAt, Math.random)).toBeUndefined();
  });
});
