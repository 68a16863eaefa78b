import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { normalizeHeaders, normalizeRawHeaders } from "./headers";

const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

// Valid names are drawn from the token alphabet; arbitrary strings cover the dropped cases.
const tokenName = fc.string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength: 12 });
const anyName = fc.oneof(tokenName, fc.string({ maxLength: 8 }));
const anyValue = fc.string({ maxLength: 16 });
// Values free of CR/LF/NUL with visible content, which `Headers` accepts and keeps in a join.
const cleanValue = fc
  .string({ unit: fc.constantFrom(..."ab ,;=\t/xyz-09"), maxLength: 12 })
  .filter((v) => v.trim() !== "");

const pairs = (name: fc.Arbitrary<string>, value: fc.Arbitrary<string>) =>
  fc.array(fc.tuple(name, value), { maxLength: 12 });

function randomCase(name: string, flips: readonly boolean[]): string {
  return [...name]
    .map((c, i) => (flips[i % Math.max(flips.length, 1)] ? c.toUpperCase() : c))
    .join("");
}

describe("normalizeHeaders properties", () => {
  it("is idempotent", () => {
    fc.assert(
      fc.property(pairs(anyName, anyValue), (input) => {
        const once = normalizeHeaders(input);
        expect(normalizeHeaders(once)).toEqual(once);
      }),
    );
  });

  it("does not depend on the case of names", () => {
    fc.assert(
      fc.property(
        pairs(anyName, anyValue),
        fc.array(fc.boolean(), { minLength: 1 }),
        (input, flips) => {
          const recased = input.map(([n, v]) => [randomCase(n, flips), v] as const);
          expect(normalizeHeaders(recased)).toEqual(normalizeHeaders(input));
        },
      ),
    );
  });

  it("answers every lookup as fetch Headers does, whatever the case of the name", () => {
    fc.assert(
      fc.property(pairs(tokenName, cleanValue), (input) => {
        const init: [string, string][] = input.map(([n, v]) => [n, v]);
        const reference = new Headers(init);
        const normalized = normalizeHeaders(input);
        for (const [name] of input) {
          expect(normalized[name.toLowerCase()]).toBe(reference.get(name));
        }
        expect(Object.keys(normalized).sort()).toEqual([...new Set(reference.keys())].sort());
      }),
    );
  });

  it("does not depend on the order of distinct names", () => {
    const groups = fc.uniqueArray(
      fc.tuple(anyName, fc.array(anyValue, { minLength: 1, maxLength: 3 })),
      {
        selector: ([name]) => name.trim().toLowerCase(),
        maxLength: 8,
      },
    );
    fc.assert(
      fc.property(
        groups.chain((g) =>
          fc.tuple(fc.constant(g), fc.shuffledSubarray(g, { minLength: g.length })),
        ),
        ([original, shuffled]) => {
          const flatten = (gs: typeof original) =>
            gs.flatMap(([name, values]) => values.map((v) => [name, v] as const));
          expect(normalizeHeaders(flatten(shuffled))).toEqual(normalizeHeaders(flatten(original)));
        },
      ),
    );
  });
});

describe("normalizeRawHeaders", () => {
  it("gives what normalizeHeaders gives for the same headers as pairs", () => {
    fc.assert(
      fc.property(pairs(anyName, anyValue), (input) => {
        expect(normalizeRawHeaders(input.flat())).toEqual(normalizeHeaders(input));
      }),
    );
  });

  it("ignores a trailing name without a value", () => {
    expect(normalizeRawHeaders(["X-A", " 1 ", "x-a", "2", "X-B"])).toEqual({ "x-a": "1, 2" });
  });
});
