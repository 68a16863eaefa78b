/**
 * True when `timestampMs` lies within `toleranceMs` of `now`, in either direction (a clock ahead of
 * ours is as suspect as one behind). The boundary is inclusive. Non-finite inputs are never
 * within tolerance, so a parse that produced NaN cannot pass a replay check.
 */
export function isWithinTolerance(timestampMs: number, now: Date, toleranceMs: number): boolean {
  const nowMs = now.getTime();
  if (!Number.isFinite(timestampMs) || !Number.isFinite(nowMs) || !Number.isFinite(toleranceMs)) {
    return false;
  }
  return Math.abs(nowMs - timestampMs) <= toleranceMs;
}
