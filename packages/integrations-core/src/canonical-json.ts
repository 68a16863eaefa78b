import { createHash } from "node:crypto";

/**
 * Canonical JSON: object keys sorted by Unicode code point (never `localeCompare`, so the result
 * does not depend on the machine's locale), no insignificant
 * whitespace, `undefined` object members omitted. Non-finite numbers, `undefined` in arrays,
 * functions, symbols and bigints are refused rather than silently changed, so two different values
 * can never share a canonical form.
 */
export function canonicalJson(value: unknown): string {
  return write(value, []);
}

/**
 * Appends to one string, and names where a refused value sits (`$.a[0].b`) only when refusing
 * it: building each member's path and a parts array per object was most of what this allocated
 * (the audit chain hashes every entry; `pnpm bench:webhooks`, docs/benchmarks.md).
 */
function write(value: unknown, path: (string | number)[]): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) refuse("non-finite number at", path);
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value)) {
        let out = "[";
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          path.push(i);
          if (item === undefined) refuse("undefined at", path);
          out += i === 0 ? write(item, path) : `,${write(item, path)}`;
          path.pop();
        }
        return `${out}]`;
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        refuse("only plain objects are allowed at", path);
      }
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).sort(compareCodePoints);
      let out = "{";
      for (const key of keys) {
        const member = record[key];
        if (member === undefined) continue;
        path.push(key);
        out += `${out.length === 1 ? "" : ","}${JSON.stringify(key)}:${write(member, path)}`;
        path.pop();
      }
      return `${out}}`;
    }
    default:
      return refuse(`unsupported ${typeof value} at`, path);
  }
}

function refuse(what: string, path: readonly (string | number)[]): never {
  let at = "$";
  for (const step of path) at += typeof step === "number" ? `[${step}]` : `.${step}`;
  throw new TypeError(`canonicalJson: ${what} ${at}`);
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
