import type { IncomingHttpHeaders } from "node:http";
import { Transform } from "node:stream";

/**
 * Replaces an injected credential in what an upstream sends back (SPEC §7: "an echoing upstream
 * never hands it to the sandbox"). Built once per credential value and route (`inject.ts` keeps
 * it with the value it injected); its patterns are the secret's bytes in every form the route
 * sent it. Every byte of every occurrence (overlapping ones included) becomes `*`: the
 * replacement has the same length, so `Content-Length` stays true, nothing is buffered, and it
 * works on any byte stream (HTTP bodies, and the upstream's side of a WebSocket, whose frames
 * are unmasked).
 *
 * Bodies stream through `BodyScrub`: each chunk goes out at once except its longest tail that is
 * a proper prefix of some pattern (usually none), which waits for the next chunk. Secrets hold no
 * control characters (the control plane refuses them), so a chunk ending a line — an SSE event's
 * blank line — is never held back.
 */

/** What a relay counts: header values and body occurrences replaced in one exchange. */
export interface ScrubTally {
  scrubbedHeaders: number;
  scrubbedBody: number;
}

const MASK = 0x2a; // "*"
const EMPTY = Buffer.alloc(0);

export class SecretScrubber {
  /** Distinct, non-empty patterns, as bytes (bodies) and as latin1 strings (header values). */
  readonly patterns: readonly Buffer[];
  readonly #headerPatterns: readonly string[];
  readonly #shortest: number;
  /** Bytes that can end a held-back tail: any byte of a pattern but its last. */
  readonly #holdable = new Uint8Array(256);

  /** `forms`: the secret as the route sent it (raw, base64 of `user:secret`, percent-encoded …). */
  constructor(forms: readonly string[]) {
    const unique = [...new Set(forms.filter((form) => form.length > 0))];
    this.patterns = unique.map((form) => Buffer.from(form, "utf8"));
    // Node and undici hand header values over as latin1 strings, one character per byte.
    this.#headerPatterns = this.patterns.map((bytes) => bytes.toString("latin1"));
    this.#shortest = Math.min(...this.patterns.map((bytes) => bytes.length));
    for (const pattern of this.patterns) {
      for (let i = 0; i < pattern.length - 1; i++) this.#holdable[pattern[i]!] = 1;
    }
  }

  /** A streaming scrub for one body, counting into `tally.scrubbedBody`. */
  body(tally: ScrubTally): BodyScrub {
    return new BodyScrub(this.patterns, this.#holdable, tally);
  }

  /** The same as a stream, for bodies read from node streams (the WebSocket relay). */
  transform(tally: ScrubTally): Transform {
    const body = this.body(tally);
    return new Transform({
      transform(chunk: Buffer, _encoding, done) {
        const out = body.push(chunk);
        done(null, out.length > 0 ? out : undefined);
      },
      flush(done) {
        const tail = body.end();
        done(null, tail.length > 0 ? tail : undefined);
      },
    });
  }

  /** Whether a header value holds a pattern (values shorter than every pattern cannot). */
  #inHeader(value: string): boolean {
    if (value.length < this.#shortest) return false;
    for (const pattern of this.#headerPatterns) if (value.includes(pattern)) return true;
    return false;
  }

  /** A header value or status text, masked (the same string when it holds no pattern). */
  scrubText(value: string, tally: ScrubTally): string {
    return this.#inHeader(value) ? this.#maskHeader(value, tally) : value;
  }

  /** The value with every occurrence masked, and how many occurrences there were. */
  #maskHeader(value: string, tally: ScrubTally): string {
    const source = Buffer.from(value, "latin1");
    const out = Buffer.from(source);
    tally.scrubbedHeaders += maskOccurrences(source, out, this.patterns, out.length, out.length);
    return out.toString("latin1");
  }

  /** `headers` itself when no value holds a pattern, else a copy with the occurrences masked. */
  scrubHeaders(headers: IncomingHttpHeaders, tally: ScrubTally): IncomingHttpHeaders {
    let out: IncomingHttpHeaders | null = null;
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined) continue;
      if (typeof value === "string") {
        if (!this.#inHeader(value)) continue;
        out ??= { ...headers };
        out[name] = this.#maskHeader(value, tally);
      } else if (value.some((item) => this.#inHeader(item))) {
        out ??= { ...headers };
        out[name] = value.map((item) =>
          this.#inHeader(item) ? this.#maskHeader(item, tally) : item,
        );
      }
    }
    return out ?? headers;
  }

  /** The same for a flat `[name, value, …]` list (Node's `rawHeaders`); values only. */
  scrubRawHeaders(raw: readonly string[], tally: ScrubTally): readonly string[] {
    let out: string[] | null = null;
    for (let i = 1; i < raw.length; i += 2) {
      const value = raw[i]!;
      if (!this.#inHeader(value)) continue;
      out ??= [...raw];
      out[i] = this.#maskHeader(value, tally);
    }
    return out ?? raw;
  }
}

/**
 * Masks in `out` (a copy of `source`) every occurrence in `source` of every pattern that starts
 * before `startBefore`, each up to `maskUntil`; returns how many there were and, through `reach`,
 * the furthest end among them. Found in the unmasked source, so overlapping occurrences count.
 */
function maskOccurrences(
  source: Buffer,
  out: Buffer,
  patterns: readonly Buffer[],
  startBefore: number,
  maskUntil: number,
  reach?: { end: number },
): number {
  let count = 0;
  for (const pattern of patterns) {
    let at = source.indexOf(pattern);
    while (at !== -1 && at < startBefore) {
      count++;
      const end = at + pattern.length;
      if (reach !== undefined && end > reach.end) reach.end = end;
      out.fill(MASK, at, Math.min(end, maskUntil));
      at = source.indexOf(pattern, at + 1);
    }
  }
  return count;
}

/**
 * Where the longest suffix of `data` that is a proper prefix of some pattern starts (else its
 * length). `holdable` marks the bytes such a suffix can end with: most chunks end with a byte
 * that is not one (a JSON brace, a newline), and are answered by one lookup.
 */
export function heldBackFrom(
  data: Buffer,
  patterns: readonly Buffer[],
  holdable?: Uint8Array,
): number {
  const length = data.length;
  if (length === 0 || holdable?.[data[length - 1]!] === 0) return length;
  let keep = length;
  for (const pattern of patterns) {
    // A proper prefix is shorter than the pattern: it starts at most `pattern.length - 1` from
    // the end. Compared in JS: a few bytes, mostly a mismatch on the first or second, where a
    // native call per candidate (`indexOf`, `compare`) cost ~1 µs per small response
    // (`pnpm bench:scrub`).
    for (let at = Math.max(0, length - pattern.length + 1); at < keep; at++) {
      let i = 0;
      while (at + i < length && data[at + i] === pattern[i]) i++;
      if (at + i === length) {
        keep = at;
        break;
      }
    }
  }
  return keep;
}

/**
 * One body's scrub. Invariants: bytes already returned are never touched again; `#held` holds
 * the upstream's original bytes (later occurrences may start in them), of which the first
 * `#heldCovered` belong to an occurrence that started in bytes already returned.
 */
export class BodyScrub {
  #held: Buffer | null = null;
  #heldCovered = 0;

  constructor(
    private readonly patterns: readonly Buffer[],
    private readonly holdable: Uint8Array,
    private readonly tally: ScrubTally,
  ) {}

  /**
   * The bytes of `chunk` (after those held from the previous one) that can go out now, masked.
   * A chunk with no occurrence and nothing to hold is returned as is, not copied.
   */
  push(chunk: Buffer): Buffer {
    const held = this.#held;
    // Bytes in `data` at or after `keep` are held; occurrences starting there are found again
    // (and counted) with the next chunk, once complete or at `end()`.
    const data = held === null ? chunk : Buffer.concat([held, chunk]);
    const keep = heldBackFrom(data, this.patterns, this.holdable);
    const covered = held === null ? 0 : this.#heldCovered;
    // The common case (nothing found, nothing covered) allocates nothing: find before copying.
    let out = data;
    let reachEnd = covered;
    if (covered > 0 || hasOccurrence(data, this.patterns, keep)) {
      // A copy: the upstream's buffer is never written, and `data` stays the unmasked source.
      out = Buffer.from(data.subarray(0, keep));
      const reach = { end: covered };
      this.tally.scrubbedBody += maskOccurrences(data, out, this.patterns, keep, keep, reach);
      out.fill(MASK, 0, Math.min(covered, keep));
      reachEnd = reach.end;
    }
    if (keep === data.length) {
      this.#held = null;
      this.#heldCovered = 0;
      return out;
    }
    // Held bytes stay unmasked (later occurrences may start in them); copied out of the
    // upstream's buffer, a view of our own.
    this.#held = data === chunk ? Buffer.from(chunk.subarray(keep)) : data.subarray(keep);
    this.#heldCovered = Math.max(0, reachEnd - keep);
    return keep === 0 ? EMPTY : out === data ? data.subarray(0, keep) : out;
  }

  /** The held bytes, masked: every occurrence in them is complete now or never will be. */
  end(): Buffer {
    const held = this.#held;
    if (held === null) return EMPTY;
    this.#held = null;
    const out = Buffer.from(held);
    out.fill(MASK, 0, this.#heldCovered);
    this.#heldCovered = 0;
    this.tally.scrubbedBody += maskOccurrences(held, out, this.patterns, out.length, out.length);
    return out;
  }
}

function hasOccurrence(data: Buffer, patterns: readonly Buffer[], startBefore: number): boolean {
  for (const pattern of patterns) {
    if (pattern.length > data.length) continue;
    const at = data.indexOf(pattern);
    if (at !== -1 && at < startBefore) return true;
  }
  return false;
}
