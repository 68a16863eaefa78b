/**
 * Header normalization for webhook verification and storage.
 *
 * Providers' verifiers look headers up by lower-case name, and ingest stores a subset of them; both
 * need one shape regardless of whether the request came through fetch (`Headers`), Node's
 * `http` module (`IncomingHttpHeaders`) or a raw `[name, value]` list.
 */

/** A Node `IncomingHttpHeaders`-like record. Values that are neither strings nor arrays are ignored. */
export type HeaderRecord = Readonly<Record<string, string | readonly string[] | undefined>>;

export type HeaderPairs = ReadonlyArray<readonly [string, string]>;

export type HeadersInput = Headers | HeaderRecord | HeaderPairs;

/** Normalized headers: lower-case names, one string value per name. */
export type NormalizedHeaders = Readonly<Record<string, string>>;

// RFC 9110 §5.6.2: token = 1*tchar.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Header values may not carry CR, LF or NUL (RFC 9110 §5.5); such a value cannot have arrived
// intact over HTTP/1.1, so it is dropped rather than stored or compared.
const FORBIDDEN_IN_VALUE = /[\r\n\0]/;
// Optional whitespace around a value is SP or HTAB only (RFC 9110 §5.6.3); `String#trim` would also
// strip Unicode spaces that are part of the value.
const SURROUNDING_OWS = /^[ \t]+|[ \t]+$/g;

/**
 * Returns a frozen record with lower-cased, trimmed names and trimmed values.
 *
 * - Names that are not HTTP tokens (after trimming) are dropped, as are values holding CR, LF or NUL.
 * - Several values for one name (repeated pairs, array values, or names differing only in case)
 *   are joined with ", " in input order, as RFC 9110 §5.3 allows for list-valued fields. Empty
 *   values are left out of such a join because an empty list element carries nothing; a name
 *   whose values are all empty maps to "".
 * - `set-cookie` is joined the same way. That is lossy (cookie attributes such as `Expires` hold
 *   commas), which is acceptable here: webhook code stores and inspects headers, it never
 *   re-emits cookies.
 *
 * The result is idempotent: normalizing a normalized record returns an equal record.
 */
export function normalizeHeaders(input: HeadersInput): NormalizedHeaders {
  return normalizeWith((add) => {
    if (input instanceof Headers) {
      // Iterating a `Headers` yields each `set-cookie` separately and every other name combined.
      for (const [name, value] of input) add(name, value);
    } else if (isPairs(input)) {
      for (const pair of input) {
        if (Array.isArray(pair) && typeof pair[0] === "string" && typeof pair[1] === "string") {
          add(pair[0], pair[1]);
        }
      }
    } else {
      for (const [name, value] of Object.entries(input)) {
        if (typeof value === "string") add(name, value);
        else if (Array.isArray(value)) {
          for (const item of value) if (typeof item === "string") add(name, item);
        }
      }
    }
  });
}

/**
 * `normalizeHeaders` of a flat name, value, name, value … list (Node's `IncomingMessage.rawHeaders`,
 * every repeat kept in order), without building its pairs first: the same record as
 * `normalizeHeaders` of those pairs. A trailing name without a value is ignored.
 */
export function normalizeRawHeaders(raw: readonly string[]): NormalizedHeaders {
  return normalizeWith((add) => {
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i];
      const value = raw[i + 1];
      if (typeof name === "string" && typeof value === "string") add(name, value);
    }
  });
}

function normalizeWith(
  feed: (add: (rawName: string, rawValue: string) => void) => void,
): NormalizedHeaders {
  // Each name's first value goes straight into the result; only repeated names collect a list.
  // (A list per name, and an entry pair per name, were most of what ingest allocated per request
  // here: `pnpm bench:webhooks`, docs/benchmarks.md.)
  const normalized: Record<string, string> = {};
  let repeated: Map<string, string[]> | undefined;
  const add = (rawName: string, rawValue: string): void => {
    const name = rawName.replace(SURROUNDING_OWS, "").toLowerCase();
    if (!TOKEN.test(name) || FORBIDDEN_IN_VALUE.test(rawValue)) return;
    const value = rawValue.replace(SURROUNDING_OWS, "");
    if (!Object.hasOwn(normalized, name)) {
      setData(normalized, name, value);
      return;
    }
    repeated ??= new Map();
    const values = repeated.get(name);
    if (values === undefined) repeated.set(name, [normalized[name] as string, value]);
    else values.push(value);
  };
  feed(add);

  if (repeated !== undefined) {
    for (const [name, values] of repeated) setData(normalized, name, joinValues(values));
  }
  return Object.freeze(normalized);
}

/** An own data property, even for `__proto__` (which plain assignment would take as the prototype). */
function setData(record: Record<string, string>, name: string, value: string): void {
  if (name === "__proto__") {
    Object.defineProperty(record, name, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else {
    record[name] = value;
  }
}

/**
 * Returns the named subset of already-normalized headers (e.g. the ones ingest stores beside a raw
 * body). Names are matched case-insensitively; absent names are simply missing from the result.
 */
export function pickHeaders(
  headers: NormalizedHeaders,
  names: Iterable<string>,
): NormalizedHeaders {
  const entries: [string, string][] = [];
  const seen = new Set<string>();
  for (const rawName of names) {
    const name = rawName.trim().toLowerCase();
    if (seen.has(name) || !Object.hasOwn(headers, name)) continue;
    seen.add(name);
    const value = headers[name];
    if (value !== undefined) entries.push([name, value]);
  }
  return Object.freeze(Object.fromEntries(entries));
}

function joinValues(values: readonly string[]): string {
  const nonEmpty = values.filter((v) => v !== "");
  return nonEmpty.join(", ");
}

function isPairs(input: HeaderRecord | HeaderPairs): input is HeaderPairs {
  return Array.isArray(input);
}
