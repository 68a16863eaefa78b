import { describe, expect, it } from "vitest";
import { isId, newId } from "./ids";

describe("newId", () => {
  it("makes well-formed, distinct ids across refills of its random pool", () => {
    // 1,000 ids draw 10,000 random bytes: the 4 KiB pool is refilled twice on the way.
    const ids = Array.from({ length: 1_000 }, () => newId("webhookEvent"));
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(isId("webhookEvent", id)).toBe(true);
    // 80 random bits each: every base32 digit of the random part shows up in the first positions.
    const firstRandomDigits = new Set(ids.map((id) => id.slice(14, 15)));
    expect(firstRandomDigits.size).toBe(32);
  });

  it("sorts by creation time as plain strings", () => {
    const earlier = newId("audit", new Date("2026-12-06T07:00:00.000Z"));
    const later = newId("audit", new Date("2026-12-06T07:00:00.001Z"));
    expect(earlier < later).toBe(true);
    expect(earlier.startsWith("aud_")).toBe(true);
  });
});
