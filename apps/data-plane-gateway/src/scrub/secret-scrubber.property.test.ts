import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SecretScrubber } from "./secret-scrubber";

/**
 * The streaming scrub equals a one-shot replacement over the whole body, however the body is cut
 * into chunks: same bytes out, same number of occurrences counted. A three-letter alphabet makes
 * overlapping, repeated and nested occurrences (and partial ones at chunk ends) common.
 */

/** Every byte inside any occurrence of any pattern (overlaps included) becomes `*`. */
function oneShot(body: Buffer, patterns: readonly Buffer[]): { out: Buffer; count: number } {
  const out = Buffer.from(body);
  let count = 0;
  for (const pattern of patterns) {
    for (let at = 0; at + pattern.length <= body.length; at++) {
      if (body.subarray(at, at + pattern.length).equals(pattern)) {
        count++;
        out.fill(0x2a, at, at + pattern.length);
      }
    }
  }
  return { out, count };
}

/** Cuts `body` at the given fractions (duplicates give empty chunks). */
function cut(body: Buffer, fractions: readonly number[]): Buffer[] {
  const points = fractions.map((f) => Math.floor(f * (body.length + 1))).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const point of points) {
    const to = Math.min(point, body.length);
    chunks.push(body.subarray(from, Math.max(from, to)));
    from = Math.max(from, to);
  }
  chunks.push(body.subarray(from));
  return chunks;
}

function streamed(scrubber: SecretScrubber, chunks: readonly Buffer[]) {
  const tally = { scrubbedHeaders: 0, scrubbedBody: 0 };
  const scrub = scrubber.body(tally);
  const outs = chunks.map((chunk) => scrub.push(chunk));
  outs.push(scrub.end());
  return { out: Buffer.concat(outs), count: tally.scrubbedBody };
}

const text = (maxLength: number) => fc.string({ unit: fc.constantFrom("a", "b", "c"), maxLength });
const pattern = fc.string({ unit: fc.constantFrom("a", "b", "c"), minLength: 1, maxLength: 4 });
const fractions = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 16 });
/** Pieces of a body: a pattern (by index) or a little noise, so occurrences are frequent. */
const pieces = fc.array(fc.oneof(fc.nat(3), text(3)), { maxLength: 14 });

function assemble(forms: readonly string[], parts: readonly (number | string)[]): Buffer {
  return Buffer.from(
    parts.map((part) => (typeof part === "number" ? forms[part % forms.length] : part)).join(""),
  );
}

describe("BodyScrub", () => {
  it("equals the one-shot replacement for any chunking", () => {
    fc.assert(
      fc.property(
        fc.array(pattern, { minLength: 1, maxLength: 4 }),
        pieces,
        fractions,
        (forms, parts, at) => {
          const scrubber = new SecretScrubber(forms);
          const bytes = assemble(forms, parts);
          const expected = oneShot(bytes, scrubber.patterns);
          const actual = streamed(scrubber, cut(bytes, at));
          expect(actual.out.toString()).toBe(expected.out.toString());
          expect(actual.count).toBe(expected.count);
        },
      ),
      { numRuns: 10_000 },
    );
  });

  it("holds nothing back after a chunk ending in a byte no pattern contains", () => {
    fc.assert(
      fc.property(
        fc.array(pattern, { minLength: 1, maxLength: 4 }),
        fc.array(text(20), { minLength: 1, maxLength: 6 }),
        (forms, events) => {
          const scrub = new SecretScrubber(forms).body({ scrubbedHeaders: 0, scrubbedBody: 0 });
          for (const event of events) {
            // An SSE event: its blank line ends the chunk.
            const chunk = Buffer.from(`data: ${event}\n\n`);
            expect(scrub.push(chunk).length).toBe(chunk.length);
          }
          expect(scrub.end().length).toBe(0);
        },
      ),
    );
  });

  it("masks secrets of any bytes, split anywhere", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 40 }),
        fc.string({ maxLength: 40 }),
        fc.string({ maxLength: 40 }),
        fractions,
        (secret, before, after, at) => {
          const scrubber = new SecretScrubber([secret]);
          const body = Buffer.from(before + secret + after);
          const actual = streamed(scrubber, cut(body, at));
          expect(actual.out.equals(oneShot(body, scrubber.patterns).out)).toBe(true);
          expect(actual.out.length).toBe(body.length);
          // A secret holding the mask character itself ("*", "a*") can reappear in the masked
          // output, made of mask characters and a neighbour's bytes: none of its own are left.
          if (!secret.includes("*")) expect(actual.out.includes(Buffer.from(secret))).toBe(false);
        },
      ),
    );
  });
});
