import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalDigest, canonicalJson, compareCodePoints } from "./canonical-json";

const jsonValue = fc.jsonValue({ noUnicodeString: false });

function reorderKeys(value: unknown, seed: number): unknown {
  if (Array.isArray(value)) return value.map((v) => reorderKeys(v, seed));
  if (typeof value !== "object" || value === null) return value;
  const entries = Object.entries(value);
  const rotated =
    entries.length > 0
      ? [
          ...entries.slice(seed % entries.length),
          ...entries.slice(0, seed % entries.length),
        ].reverse()
      : entries;
  return Object.fromEntries(rotated.map(([k, v]) => [k, reorderKeys(v, seed + 1)]));
}

const wellFormed = (s: string) => Buffer.from(s, "utf8").toString("utf8") === s;

describe("canonicalJson", () => {
  it("does not depend on the insertion order of object keys", () => {
    fc.assert(
      fc.property(jsonValue, fc.nat(), (value, seed) => {
        expect(canonicalJson(reorderKeys(value, seed))).toBe(canonicalJson(value));
        expect(canonicalDigest(reorderKeys(value, seed))).toBe(canonicalDigest(value));
      }),
    );
  });

  it("round-trips: parsing the canonical form gives an equal value with the same canonical form", () => {
    fc.assert(
      fc.property(jsonValue, (value) => {
        const text = canonicalJson(value);
        const parsed: unknown = JSON.parse(text);
        expect(parsed).toEqual(JSON.parse(JSON.stringify(value)));
        expect(canonicalJson(parsed)).toBe(text);
      }),
    );
  });

  it("orders keys by code point, which equals UTF-8 byte order, whatever the locale", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), fc.string({ unit: "binary" }), (a, b) => {
        const bytes = Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
        // Lone surrogates encode to U+FFFD in UTF-8, so only compare well-formed strings.
        if (wellFormed(a) && wellFormed(b)) expect(Math.sign(compareCodePoints(a, b))).toBe(bytes);
        expect(Math.sign(compareCodePoints(a, b)) + Math.sign(compareCodePoints(b, a))).toBe(0);
      }),
    );
  });
});

describe("canonicalJson edge cases", () => {
  it("refuses values JSON cannot carry faithfully", () => {
    expect(() => canonicalJson({ a: Number.NaN })).toThrow(/non-finite/);
    expect(() => canonicalJson([undefined])).toThrow(/undefined/);
    expect(() => canonicalJson({ d: new Date(0) })).toThrow(/plain objects/);
    expect(() => canonicalJson(10n)).toThrow(/bigint/);
  });

  it("omits undefined members and writes no whitespace", () => {
    expect(canonicalJson({ b: 1, a: { d: undefined, c: [true, null, "x"] } })).toBe(
      '{"a":{"c":[true,null,"x"]},"b":1}',
    );
  });

  it("sorts astral characters after U+FFFF-range characters", () => {
    expect(canonicalJson({ "😀": 1, "\uffee": 2 })).toBe('{"\uffee":2,"😀":1}');
  });
});
