/**
 * When delivery attempts are made (SPEC §8): the first at once, then 5 s, 5 min, 30 min, 2 h, 5 h,
 * 10 h and 10 h after the attempt before failed. After the eighth failed attempt the delivery is
 * dead (a manual replay can still try again). Pure: the clock and the random source are the
 * caller's.
 */
export const DELIVERY_SCHEDULE_MS: readonly number[] = [
  0,
  5_000,
  5 * 60_000,
  30 * 60_000,
  2 * 3_600_000,
  5 * 3_600_000,
  10 * 3_600_000,
  10 * 3_600_000,
];

export const MAX_DELIVERY_ATTEMPTS = DELIVERY_SCHEDULE_MS.length;

/**
 * Each wait is stretched or shrunk by up to 10 %, so the retries of many deliveries that failed
 * together (a subscriber's outage) do not all come back at the same instant.
 */
export const DELIVERY_JITTER = 0.1;

/**
 * When the attempt after `attemptsMade` failed ones is due: `failedAt` plus the schedule's wait
 * for that attempt, ± jitter (`random` returns a number in [0, 1), like `Math.random`). Undefined
 * when the schedule is exhausted: the delivery is dead. Attempts beyond the schedule (made by a
 * manual replay of a dead delivery) have none left either.
 */
export function nextAttemptAt(
  attemptsMade: number,
  failedAt: Date,
  random: () => number,
): Date | undefined {
  const wait = DELIVERY_SCHEDULE_MS[attemptsMade];
  if (wait === undefined) return undefined;
  const factor = 1 + DELIVERY_JITTER * (2 * random() - 1);
  return new Date(failedAt.getTime() + Math.round(wait * factor));
}
