import { describe, expect, it } from "vitest";
import {
  credentialSecretSchema,
  httpBaseUrlSchema,
  httpUrlSettingSchema,
  multiLineSecretSchema,
  singleLineTextSchema,
  TEXT_ISSUE_CODE,
  textViolation,
} from "./text";

describe("textViolation", () => {
  it.each([
    ["a\u0000b", "multi-line", "must not contain NUL (U+0000)"],
    ["a\ud800b", "multi-line", "must not contain a lone UTF-16 surrogate (U+D800)"],
    ["a\udc00", "single-line", "must not contain a lone UTF-16 surrogate (U+DC00)"],
    ["\u0007", "multi-line", "must not contain control characters (U+0007)"],
    ["a\u007f", "multi-line", "must not contain control characters (U+007F)"],
    ["a\u0085", "multi-line", "must not contain control characters (U+0085)"],
    ["a\nb", "single-line", "must be a single line, without line breaks or tabs (U+000A)"],
    ["a\tb", "single-line", "must be a single line, without line breaks or tabs (U+0009)"],
    [
      "https://a.example/v1\r\n",
      "url",
      "must be a single line, without line breaks or tabs (U+000D)",
    ],
    ["https://a.example/ v1", "url", "must not contain whitespace (U+0020)"],
    ["https://a.example/\u00a0", "url", "must not contain whitespace (U+00A0)"],
    ["sk-é", "credential", "must hold printable ASCII characters only"],
    ["sk-😀", "credential", "must hold printable ASCII characters only"],
    [" sk-1", "credential", "must not start or end with a space"],
    ["sk-1\r\n", "credential", "must be a single line, without line breaks or tabs (U+000D)"],
  ] as const)("%j as %s: %s", (value, kind, message) => {
    expect(textViolation(value, kind)).toBe(message);
  });

  it.each([
    ["line one\nline two\r\n\tindented", "multi-line"],
    ["Ünïcödé 😀 名前", "single-line"],
    ["https://bücher.example/v1", "url"],
    ["sk-proj_AZaz09 with inner space", "credential"],
    ["", "credential"],
  ] as const)("accepts %j as %s", (value, kind) => {
    expect(textViolation(value, kind)).toBeUndefined();
  });
});

describe("zod helpers", () => {
  it("report the text issue with its code and abort later checks", () => {
    const result = singleLineTextSchema.min(5).safeParse("a\u0000");
    expect(result.error?.issues).toEqual([
      expect.objectContaining({
        code: "custom",
        message: "must not contain NUL (U+0000)",
        params: { code: TEXT_ISSUE_CODE },
      }),
    ]);
  });

  it("refuse CR, LF, TAB and surrounding spaces in URL settings, which the URL parser drops", () => {
    for (const value of [
      "https://api.example.com/v1\r\n",
      "https://api.example.com/v\n1",
      "https://api.example.com/v1\t",
      " https://api.example.com/v1",
    ]) {
      const result = httpBaseUrlSchema.safeParse(value);
      expect(result.success, JSON.stringify(value)).toBe(false);
      expect(result.error?.issues).toHaveLength(1);
    }
    expect(httpBaseUrlSchema.safeParse("https://api.example.com/v1").success).toBe(true);
  });

  it("keep the URL rules: scheme, query only where allowed, never fragments or credentials", () => {
    expect(httpBaseUrlSchema.safeParse("ftp://a.example").success).toBe(false);
    expect(httpBaseUrlSchema.safeParse("https://a.example/?q=1").success).toBe(false);
    expect(httpBaseUrlSchema.safeParse("https://u:p@a.example/").success).toBe(false);
    const tokenUrl = httpUrlSettingSchema({ query: true });
    expect(tokenUrl.safeParse("https://a.example/token?tenant=1").success).toBe(true);
    expect(tokenUrl.safeParse("https://a.example/token#x").success).toBe(false);
    const httpsOnly = httpUrlSettingSchema({ httpsOnly: true });
    expect(httpsOnly.safeParse("http://a.example").success).toBe(false);
  });

  it("tell credential secrets from multi-line secrets", () => {
    const pem = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
    expect(multiLineSecretSchema.safeParse(pem).success).toBe(true);
    expect(credentialSecretSchema.safeParse(pem).success).toBe(false);
    expect(credentialSecretSchema.safeParse("ghs_abc123").success).toBe(true);
    expect(credentialSecretSchema.safeParse("").success).toBe(false);
  });
});
