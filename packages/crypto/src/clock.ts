/** Source of the current time; tests pass a clock set to chosen instants. */
export interface Clock {
  now(): Date;
}

export function epochSeconds(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}
