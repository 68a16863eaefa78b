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

  it("writes the milliseconds as ten Crockford base32 digits after the prefix", () => {
    const timeOf = (ms: number) => newId("webhookEvent", new Date(ms)).slice(4, 14);
    expect(timeOf(0)).toBe("0000000000");
    expect(timeOf(1)).toBe("0000000001");
    expect(timeOf(32)).toBe("0000000010");
    expect(timeOf(2 ** 48 - 1)).toBe("7ZZZZZZZZZ");
    const ms = Date.UTC(2026, 11, 6, 7, 30, 15, 123);
    expect(timeOf(ms)).toBe(crockford(ms));
    expect(newId("connection", new Date(0))).toMatch(/^conn_0{10}[0-9A-HJKMNP-TV-Z]{16}$/);
  });
});

function crockford(ms: number): string {
  const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  let out = "";
  for (let i = 0, t = ms; i < 10; i++, t = Math.floor(t / 32)) out = alphabet[t % 32] + out;
  return out;
}
