import { describe, expect, it } from "vitest";
import { isWithinTolerance } from "./timestamps";

describe("isWithinTolerance", () => {
  const now = new Date("2025-01-01T00:00:00.000Z");
  const t = now.getTime();

  it("accepts timestamps up to the tolerance in both directions, inclusive", () => {
    expect(isWithinTolerance(t, now, 60_000)).toBe(true);
    expect(isWithinTolerance(t - 60_000, now, 60_000)).toBe(true);
    expect(isWithinTolerance(t + 60_000, now, 60_000)).toBe(true);
  });

  it("rejects timestamps beyond the tolerance in both directions", () => {
    expect(isWithinTolerance(t - 60_001, now, 60_000)).toBe(false);
    expect(isWithinTolerance(t + 60_001, now, 60_000)).toBe(false);
  });

  it("rejects non-finite values", () => {
    expect(isWithinTolerance(Number.NaN, now, 60_000)).toBe(false);
    expect(isWithinTolerance(t, new Date(Number.NaN), 60_000)).toBe(false);
    expect(isWithinTolerance(t, now, Number.POSITIVE_INFINITY)).toBe(false);
  });
});
