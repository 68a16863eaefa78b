import { readFileSync } from "node:fs";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { asciiOnly, buildService } from "./build";

describe("asciiOnly", () => {
  it("escapes every non-ASCII character so that code means the same", () => {
    const source =
      "// the response’s type — ≈ 😀\n" +
      "result = ['’', `≈$" +
      "{1}`, /é+/.test('éé'), /😀/u.test('😀'), '😀'.length];";
    const escaped = asciiOnly(source);
    expect(escaped).toMatch(/^[\t\n\r -~]*$/);
    expect(escaped).toContain("\\u2019");
    const before: { result?: unknown } = {};
    const after: { result?: unknown } = {};
    runInNewContext(source, before);
    runInNewContext(escaped, after);
    expect(after.result).toEqual(["’", "≈1", true, true, 2]);
    expect(after.result).toEqual(before.result);
  });

  it("leaves ASCII text as it is", () => {
    const source = 'const a = "plain"; // a comment\n';
    expect(asciiOnly(source)).toBe(source);
  });
});

describe("buildService", () => {
  it("writes the gateway's bundle as ASCII only (V8 keeps its source as one-byte text)", async () => {
    const bundle = await buildService("data-plane-gateway");
    const text = readFileSync(bundle, "utf8");
    expect(text.length).toBeGreaterThan(100_000);
    expect(text).toMatch(/^[\t\n\r -~]*$/);
    expect(text).toContain("//# sourceMappingURL=main.mjs.map");
  }, 60_000);
});
