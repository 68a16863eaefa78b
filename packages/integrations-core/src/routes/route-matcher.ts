import type { RouteMatch } from "../plan/schema";

/**
 * The one definition of "does this request match this route" (SPEC 4.3). The compiler's overlap
 * check, the gateway's index and the tests all go through these functions, so they cannot disagree.
 *
 * Invariant relied on throughout: a normalized host and a normalized path are plain strings that
 * compare with `===`; route hosts and prefixes are normalized the same way as request values, so a
 * non-canonical spelling in a plan (`%7e`, `API.x.com`) means the same thing as the canonical one.
 */

export type PathRefusalReason = "dot_segment" | "encoded_slash" | "backslash" | "nul" | "malformed";

export type NormalizedPath =
  | { readonly ok: true; readonly path: string }
  | { readonly ok: false; readonly reason: PathRefusalReason };

/** A request as the matcher sees it: `host` and `path` normalized, `method` in any case. */
export interface RouteRequest {
  readonly host: string;
  readonly method: string;
  readonly path: string;
}

type PathRefusal = Extract<NormalizedPath, { ok: false }>;

// Shared frozen results so refusing a request allocates nothing.
const REFUSED: { readonly [R in PathRefusalReason]: PathRefusal } = {
  dot_segment: Object.freeze({ ok: false, reason: "dot_segment" }),
  encoded_slash: Object.freeze({ ok: false, reason: "encoded_slash" }),
  backslash: Object.freeze({ ok: false, reason: "backslash" }),
  nul: Object.freeze({ ok: false, reason: "nul" }),
  malformed: Object.freeze({ ok: false, reason: "malformed" }),
};

const SLASH = 0x2f;
const BACKSLASH = 0x5c;
const PERCENT = 0x25;
const DOT = 0x2e;
const COLON = 0x3a;
const SEMICOLON = 0x3b;
const QUESTION = 0x3f;
const HASH = 0x23;
const HEX_DIGITS = "0123456789ABCDEF";

// DNS allows 253 characters; the slack covers a trailing dot, brackets and a port.
const MAX_HOST_LENGTH = 263;

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

function isAsciiLower(c: number): boolean {
  return c >= 0x61 && c <= 0x7a;
}

function isAsciiUpper(c: number): boolean {
  return c >= 0x41 && c <= 0x5a;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(c: number): boolean {
  return (
    isAsciiLower(c) ||
    isAsciiUpper(c) ||
    isDigit(c) ||
    c === 0x2d ||
    c === DOT ||
    c === 0x5f ||
    c === 0x7e
  );
}

/**
 * Printable ASCII that RFC 3986 does not allow raw in a path (`"<>[]^\`{|}`). Upstreams decode
 * `%22` and a raw `"` to the same byte, so both spellings must normalize to one form.
 */
function mustBeEncoded(c: number): boolean {
  return (
    c === 0x22 ||
    c === 0x3c ||
    c === 0x3e ||
    c === 0x5b ||
    c === 0x5d ||
    c === 0x5e ||
    c === 0x60 ||
    c === 0x7b ||
    c === 0x7c ||
    c === 0x7d
  );
}

/**
 * `PLAIN[c] === 1` for the characters that stand for themselves in a normalized path and need no
 * further thought (everything but `/ . ; %` and what must be refused or encoded): the scan's fast
 * path, since most of a real path is made of them.
 */
const PLAIN = new Uint8Array(0x80);
for (let c = 0x21; c < 0x7f; c++) {
  const special = c === SLASH || c === DOT || c === SEMICOLON || c === PERCENT;
  const stopsOrRefused = c === QUESTION || c === HASH || c === BACKSLASH;
  if (!special && !stopsOrRefused && !mustBeEncoded(c)) PLAIN[c] = 1;
}

function percentEncoded(byte: number): string {
  return `%${HEX_DIGITS[byte >> 4]}${HEX_DIGITS[byte & 0xf]}`;
}

/**
 * Lower-cases a Host header or authority and removes a default port (80/443). Accepts `host`,
 * `host:port` and `[ipv6]:port`; a single trailing dot (`api.x.com.`) is dropped because DNS
 * resolves it to the same name, and leaving it would let a request slip past a managed host.
 * Returns null for anything else (empty, userinfo, spaces, non-ASCII, empty labels, bad port).
 * IPv6 literals are checked for their alphabet but not canonicalized: route hosts cannot be IPv6.
 */
export function normalizeHost(hostHeaderOrAuthority: string): string | null {
  const input = hostHeaderOrAuthority;
  const n = input.length;
  if (n === 0 || n > MAX_HOST_LENGTH) return null;

  let changed = false;
  let nameEnd: number;
  let afterName: number;
  if (input.charCodeAt(0) === 0x5b) {
    const close = input.indexOf("]");
    if (close < 0) return null;
    let colons = 0;
    for (let i = 1; i < close; i++) {
      const c = input.charCodeAt(i);
      if (c === COLON) colons++;
      else if (isAsciiUpper(c)) changed = true;
      if (hexValue(c) < 0 && c !== COLON && c !== DOT) return null;
    }
    if (colons < 2) return null;
    nameEnd = close + 1;
    afterName = nameEnd;
  } else {
    let i = 0;
    let labelLength = 0;
    for (; i < n; i++) {
      const c = input.charCodeAt(i);
      if (c === COLON) break;
      if (c === DOT) {
        if (labelLength === 0) return null;
        labelLength = 0;
        continue;
      }
      if (isAsciiUpper(c)) changed = true;
      else if (!(isAsciiLower(c) || isDigit(c) || c === 0x2d || c === 0x5f)) return null;
      labelLength++;
    }
    if (i === 0) return null;
    afterName = i;
    nameEnd = i;
    if (labelLength === 0) {
      nameEnd = i - 1;
      changed = true;
    }
  }

  let port = -1;
  if (afterName < n) {
    if (input.charCodeAt(afterName) !== COLON) return null;
    const digits = n - afterName - 1;
    if (digits < 1 || digits > 5) return null;
    port = 0;
    for (let i = afterName + 1; i < n; i++) {
      const c = input.charCodeAt(i);
      if (!isDigit(c)) return null;
      port = port * 10 + (c - 0x30);
    }
    if (port === 0 || port > 65535) return null;
    if (port === 80 || port === 443 || input.charCodeAt(afterName + 1) === 0x30) changed = true;
  }

  if (!changed) return input;
  const name = input.slice(0, nameEnd).toLowerCase();
  return port === -1 || port === 80 || port === 443 ? name : `${name}:${port}`;
}

/** ASCII-only upper-casing: Unicode case mapping would turn `poſt` into `POST`. */
export function normalizeMethod(method: string): string {
  for (let i = 0; i < method.length; i++) {
    if (isAsciiLower(method.charCodeAt(i))) {
      return method.replace(/[a-z]+/g, (s) => s.toUpperCase());
    }
  }
  return method;
}

/**
 * Normalizes one path. Request mode stops at `?`/`#`; prefix mode (plan values) refuses them.
 * Returns the normalized path, or a shared refusal. Returns the input itself when nothing changes,
 * which is the common case and keeps the gateway's hot path free of allocation.
 */
function scanPath(raw: string, isPrefix: boolean): string | PathRefusal {
  if (raw.charCodeAt(0) !== SLASH) return REFUSED.malformed;
  let end = raw.length;
  let out: string | null = null;
  let copied = 0;
  // Per segment: how many decoded characters precede any raw `;`, and how many of them are dots.
  // `..;x` counts as a dot segment because Tomcat-style servers drop path parameters (`;x`)
  // before resolving dot segments.
  let headLength = 0;
  let headDots = 0;
  let inParams = false;

  for (let i = 1; i < end; i++) {
    const c = raw.charCodeAt(i);
    if (c < 0x80 && PLAIN[c] === 1) {
      if (!inParams) headLength++;
      continue;
    }
    if (c === SLASH) {
      if (headLength === headDots && (headLength === 1 || headLength === 2)) {
        return REFUSED.dot_segment;
      }
      headLength = 0;
      headDots = 0;
      inParams = false;
      continue;
    }
    if (c === QUESTION || c === HASH) {
      if (isPrefix) return REFUSED.malformed;
      end = i;
      break;
    }
    let decoded = c;
    if (c === PERCENT) {
      const hi = raw.charCodeAt(i + 1);
      const lo = raw.charCodeAt(i + 2);
      const h = hexValue(hi);
      const l = hexValue(lo);
      if (h < 0 || l < 0) return REFUSED.malformed;
      const byte = h * 16 + l;
      if (byte === SLASH) return REFUSED.encoded_slash;
      if (byte === BACKSLASH) return REFUSED.backslash;
      if (byte === 0) return REFUSED.nul;
      if (isUnreserved(byte)) {
        out = (out ?? "") + raw.slice(copied, i) + String.fromCharCode(byte);
        copied = i + 3;
        decoded = byte;
      } else {
        if (isAsciiLower(hi) || isAsciiLower(lo)) {
          out = (out ?? "") + raw.slice(copied, i) + percentEncoded(byte);
          copied = i + 3;
        }
        // `%3B` counts as a parameter delimiter too: some servers decode before splitting them off.
        decoded = byte === SEMICOLON ? SEMICOLON : PERCENT;
      }
      i += 2;
    } else if (c === BACKSLASH) {
      return REFUSED.backslash;
    } else if (c === 0) {
      return REFUSED.nul;
    } else if (c <= 0x20 || c >= 0x7f) {
      return REFUSED.malformed;
    } else if (mustBeEncoded(c)) {
      out = (out ?? "") + raw.slice(copied, i) + percentEncoded(c);
      copied = i + 1;
    }
    if (!inParams) {
      if (decoded === SEMICOLON) inParams = true;
      else {
        headLength++;
        if (decoded === DOT) headDots++;
      }
    }
  }
  if (headLength === headDots && (headLength === 1 || headLength === 2)) {
    return REFUSED.dot_segment;
  }
  if (out === null) return end === raw.length ? raw : raw.slice(0, end);
  return out + raw.slice(copied, end);
}

/**
 * Normalizes a request-target path to the form the upstream will read: query and fragment
 * removed, escapes of unreserved characters decoded, other escapes upper-cased. Refuses what an
 * upstream could read as a different path than we matched (dot segments, encoded slash,
 * backslash, NUL) and anything malformed, rather than guessing. Empty segments are kept.
 */
export function normalizeRequestPath(rawPath: string): NormalizedPath {
  const result = scanPath(rawPath, false);
  return typeof result === "string" ? { ok: true, path: result } : result;
}

/**
 * Normalizes a route's path prefix the same way as a request path. Null means no accepted request
 * path can ever match it (it is not a path, or holds something a request would be refused for).
 */
export function normalizePathPrefix(prefix: string): string | null {
  const result = scanPath(prefix, true);
  return typeof result === "string" ? result : null;
}

/**
 * Segment-boundary prefix test: `/v1` matches `/v1` and `/v1/x` but not `/v10`; `/` matches every
 * path. Both arguments must already be normalized; comparison is case-sensitive.
 */
export function pathHasPrefix(path: string, prefix: string): boolean {
  const n = prefix.length;
  if (n === 0 || !path.startsWith(prefix)) return false;
  return path.length === n || prefix.charCodeAt(n - 1) === SLASH || path.charCodeAt(n) === SLASH;
}

// Absent path prefixes mean "any path", which is exactly what `/` matches.
const ANY_PATH: readonly string[] = Object.freeze(["/"]);

/** The route's hosts, normalized, without the ones that could never match a request. */
export function routeHosts(match: RouteMatch): string[] {
  const hosts: string[] = [];
  for (const host of match.hosts) {
    const normalized = normalizeHost(host);
    if (normalized !== null && !hosts.includes(normalized)) hosts.push(normalized);
  }
  return hosts;
}

/** The route's methods upper-cased, or null when it accepts any method. */
export function routeMethods(match: RouteMatch): string[] | null {
  if (match.methods === undefined) return null;
  const methods: string[] = [];
  for (const method of match.methods) {
    const normalized = normalizeMethod(method);
    if (!methods.includes(normalized)) methods.push(normalized);
  }
  return methods;
}

/** The route's prefixes normalized (absent = `/`), without the ones no request path can match. */
export function routePathPrefixes(match: RouteMatch): readonly string[] {
  if (match.pathPrefixes === undefined) return ANY_PATH;
  const prefixes: string[] = [];
  for (const prefix of match.pathPrefixes) {
    const normalized = normalizePathPrefix(prefix);
    if (normalized !== null && !prefixes.includes(normalized)) prefixes.push(normalized);
  }
  return prefixes;
}

/** True when the request (host and path normalized, method in any case) matches the route. */
export function routeMatchesRequest(match: RouteMatch, req: RouteRequest): boolean {
  if (!routeHosts(match).includes(req.host)) return false;
  const methods = routeMethods(match);
  if (methods !== null && !methods.includes(normalizeMethod(req.method))) return false;
  return routePathPrefixes(match).some((prefix) => pathHasPrefix(req.path, prefix));
}

/**
 * True exactly when some accepted request matches both routes. For prefixes this reduces to one
 * being a segment-boundary prefix of the other: any path matching both has both as string
 * prefixes, so the shorter is a segment-boundary prefix of the longer, and the longer, itself a
 * normalized path, is a request that matches both.
 */
export function routesOverlap(a: RouteMatch, b: RouteMatch): boolean {
  const hostsA = routeHosts(a);
  if (!routeHosts(b).some((host) => hostsA.includes(host))) return false;

  const methodsA = routeMethods(a);
  const methodsB = routeMethods(b);
  if (methodsA !== null && methodsB !== null && !methodsB.some((m) => methodsA.includes(m))) {
    return false;
  }

  const prefixesA = routePathPrefixes(a);
  return routePathPrefixes(b).some((q) =>
    prefixesA.some((p) => pathHasPrefix(p, q) || pathHasPrefix(q, p)),
  );
}

/**
 * Whether a request-target's query carries a parameter a route excludes (`excludeQuery` in the
 * plan schema). Decoding follows what servers do with a query (`+` is a space, percent-escapes
 * decoded) so a spelling like `git%2Dreceive%2Dpack` cannot slip past; a parameter whose name
 * or value does not decode is treated as excluded rather than guessed at.
 */
export function queryIsExcluded(
  exclusions: readonly { readonly name: string; readonly values: readonly string[] }[],
  rawPath: string,
): boolean {
  const start = rawPath.indexOf("?");
  if (start < 0) return false;
  for (const pair of rawPath.slice(start + 1).split("&")) {
    const eq = pair.indexOf("=");
    const name = decodeQueryPart(eq < 0 ? pair : pair.slice(0, eq));
    const value = decodeQueryPart(eq < 0 ? "" : pair.slice(eq + 1));
    for (const exclusion of exclusions) {
      if (name === undefined || value === undefined) {
        if (pair.length > 0) return true;
        continue;
      }
      if (name !== exclusion.name) continue;
      const lower = value.toLowerCase();
      if (exclusion.values.some((v) => v.toLowerCase() === lower)) return true;
    }
  }
  return false;
}

function decodeQueryPart(part: string): string | undefined {
  try {
    return decodeURIComponent(part.replaceAll("+", " "));
  } catch {
    return undefined;
  }
}
