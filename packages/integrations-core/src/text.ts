import { z } from "zod";

/**
 * Which characters a text value may hold (SPEC §10), one set of rules for the whole platform.
 * PostgreSQL refuses NUL in text and jsonb and lone surrogates in jsonb; control characters change
 * what a value means once it is printed, parsed or sent: the URL parser silently drops CR, LF and
 * TAB (a different route prefix than the one written), a header value with CR or LF is refused
 * or splits the header. Values are refused, never cleaned: what is stored is what was written.
 *
 * - `multi-line`: any text (descriptions, a PEM key): no lone UTF-16 surrogate and no control
 *   character (Unicode `Cc`: C0, DEL, C1) except TAB, LF and CR.
 * - `single-line`: names, ids, keys, path and query parameters: no control character at all.
 * - `url`: URL settings: single-line and no whitespace, which the URL parser would drop or encode.
 * - `credential`: secrets sent in HTTP requests (injected into headers or queries, or sent to a
 *   token endpoint): printable ASCII, U+0020–U+007E, without a leading or trailing space — what a
 *   header value carries unchanged (HTTP trims the spaces, and bytes above U+007E are read
 *   differently by different servers).
 */
export type TextKind = "multi-line" | "single-line" | "url" | "credential";

/** Code of the issue a value breaking a text rule gets, in API field issues and zod issues. */
export const TEXT_ISSUE_CODE = "invalid_characters";

const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;

function codePointName(codePoint: number): string {
  return `U+${codePoint.toString(16).toUpperCase().padStart(4, "0")}`;
}

function isControl(unit: number): boolean {
  return unit < 0x20 || (unit >= 0x7f && unit <= 0x9f);
}

/**
 * Why `value` breaks the rule of `kind`, as a message naming the first offending character by its
 * code point (never quoting the value, which may be a secret); `undefined` when it complies.
 */
export function textViolation(value: string, kind: TextKind): string | undefined {
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    if (unit >= 0x20 && unit < 0x7f) {
      if (unit === 0x20 && kind === "url") return "must not contain whitespace (U+0020)";
      continue;
    }
    if (unit === 0) return "must not contain NUL (U+0000)";
    if (unit >= 0xd800 && unit <= 0xdfff) {
      const next = value.charCodeAt(i + 1);
      if (unit > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) {
        return `must not contain a lone UTF-16 surrogate (${codePointName(unit)})`;
      }
      if (kind === "credential") return "must hold printable ASCII characters only";
      i++;
      continue;
    }
    if (isControl(unit)) {
      const lineBreak = unit === TAB || unit === LF || unit === CR;
      if (lineBreak && kind === "multi-line") continue;
      return lineBreak
        ? `must be a single line, without line breaks or tabs (${codePointName(unit)})`
        : `must not contain control characters (${codePointName(unit)})`;
    }
    if (kind === "credential") return "must hold printable ASCII characters only";
    if (kind === "url" && /\s/.test(value[i] as string)) {
      return `must not contain whitespace (${codePointName(unit)})`;
    }
  }
  if (kind === "credential" && (value.startsWith(" ") || value.endsWith(" "))) {
    return "must not start or end with a space";
  }
  return undefined;
}

/** A zod refinement applying a text rule; it aborts, so later checks never see a refused value. */
function textRule(kind: TextKind) {
  return z.superRefine<string>((value, ctx) => {
    const message = textViolation(value, kind);
    if (message !== undefined) {
      ctx.addIssue({
        code: "custom",
        message,
        input: value,
        params: { code: TEXT_ISSUE_CODE },
        continue: false,
      });
    }
  });
}

/** A name, id or other one-line text. */
export const singleLineTextSchema = z.string().check(textRule("single-line"));

/** A secret sent in HTTP requests (API key, token, client secret, signing secret); see `credential`. */
export const credentialSecretSchema = z.string().min(1).check(textRule("credential"));

/** A secret that legitimately spans lines, such as a PEM private key. */
export const multiLineSecretSchema = z.string().min(1).check(textRule("multi-line"));

/**
 * An operator-configured http(s) URL setting. The character rule runs before the URL check,
 * because the URL parser drops CR, LF, TAB and surrounding spaces and would accept the value.
 * Credentials never live in a URL setting; `query: false` (base URLs: routes match on host and
 * path only) also refuses a query. A fragment is never sent, so it is always refused.
 */
export function httpUrlSettingSchema(options: { query?: boolean; httpsOnly?: boolean } = {}) {
  const query = options.query ?? false;
  return z
    .string()
    .check(textRule("url"))
    .check(z.url({ protocol: options.httpsOnly ? /^https$/ : /^https?$/ }))
    .refine(
      (value) => {
        // zod runs refinements after a failed URL check too; that failure is reported already.
        if (!URL.canParse(value)) return true;
        const url = new URL(value);
        return !url.hash && !url.username && !url.password && (query || !url.search);
      },
      query
        ? "URL must not carry credentials or a fragment"
        : "URL must not carry a query, fragment or credentials",
    );
}

/** An http(s) base URL a route can be derived from (`splitBaseUrl`): no query. */
export const httpBaseUrlSchema = httpUrlSettingSchema();
