import { createHash } from "node:crypto";

/**
 * Canonical JSON: object keys sorted by Unicode code point (never `localeCompare`, so the result
 * does not depend on the machine's locale), no insignificant
 * whitespace, `undefined` object members omitted. Non-finite numbers, `undefined` in arrays,
 * functions, symbols and bigints are refused rather than silently changed, so two different values
 * can never share a canonical form.
 */
export function canonicalJson(value: unknown): string {
  return write(value, "$");
}

function write(value: unknown, at: string): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: non-finite number at ${at}`);
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value)) {
        const parts: string[] = [];
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          if (item === undefined) throw new TypeError(`canonicalJson: undefined at ${at}[${i}]`);
          parts.push(write(item, `${at}[${i}]`));
        }
        return `[${parts.join(",")}]`;
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw new TypeError(`canonicalJson: only plain objects are allowed at ${at}`);
      }
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).sort(compareCodePoints);
      const parts: string[] = [];
      for (const key of keys) {
        const member = record[key];
        if (member === undefined) continue;
        parts.push(`${JSON.stringify(key)}:${write(member, `${at}.${key}`)}`);
      }
      return `{${parts.join(",")}}`;
    }
    default:
      throw new TypeError(`canonicalJson: unsupported ${typeof value} at ${at}`);
  }
}

/**
 * Locale-independent total order on strings by Unicode code point. Plain `<` compares UTF-16 code
 * units, which orders astral characters before U+E000..U+FFFF; comparing code points keeps the
 * order the SPEC names and matches byte order of the UTF-8 encoding.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Only when a surrogate is involved do code units and code points disagree.
    if (x >= 0xd800 || y >= 0xd800) {
      const cx = a.codePointAt(i) ?? x;
      const cy = b.codePointAt(i) ?? y;
      if (cx !== cy) return cx < cy ? -1 : 1;
      continue;
    }
    return x < y ? -1 : 1;
  }
  return a.length - b.length < 0 ? -1 : a.length === b.length ? 0 : 1;
}

/** SHA-256 (lower-case hex) of the canonical JSON of `value`. */
export function canonicalDigest(value: unknown): string {
  return createHash("sha256").update(canonicalJson(value), "utf8").digest("hex");
}

/** Pretty, stable JSON for files a person may read: sorted keys, two-space indent, final newline. */
export function stableJsonFile(value: unknown): string {
  return `${JSON.stringify(JSON.parse(canonicalJson(value)), null, 2)}\n`;
}
