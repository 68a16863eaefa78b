import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type TextKind, textViolation } from "./text";

/** Code units biased towards the awkward ones: controls, surrogates, spaces, non-ASCII. */
const hostileUnit = fc.oneof(
  fc.integer({ min: 0x00, max: 0x1f }),
  fc.constantFrom(0x20, 0x7f, 0x85, 0x9f, 0xa0, 0x2028, 0xfeff),
  fc.integer({ min: 0x21, max: 0x7e }),
  fc.integer({ min: 0xd800, max: 0xdfff }),
  fc.integer({ min: 0x80, max: 0xffff }),
);
const hostileString = fc
  .array(hostileUnit, { maxLength: 24 })
  .map((units) => String.fromCharCode(...units));

/** The rules restated with the platform's own notions (`Cc`, well-formedness), as an oracle. */
function allowed(value: string, kind: TextKind): boolean {
  if (/\p{Cs}/u.test(value)) return false; // a lone surrogate (pairs are one code point here)
  const controls = [...value].filter((c) => /\p{Cc}/u.test(c));
  switch (kind) {
    case "multi-line":
      return controls.every((c) => c === "\t" || c === "\n" || c === "\r");
    case "single-line":
      return controls.length === 0;
    case "url":
      return controls.length === 0 && !/\s/u.test(value);
    case "credential":
      return /^[\x20-\x7e]*$/.test(value) && !value.startsWith(" ") && !value.endsWith(" ");
  }
}

describe("textViolation", () => {
  for (const kind of ["multi-line", "single-line", "url", "credential"] as const) {
    it(`refuses exactly what the ${kind} rule forbids`, () => {
      fc.assert(
        fc.property(hostileString, (value) => {
          expect(textViolation(value, kind) === undefined).toBe(allowed(value, kind));
        }),
        { numRuns: 500 },
      );
    });
  }
});
