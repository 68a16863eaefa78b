import { describe, expect, it } from "vitest";
import { inputTextIssues } from "./input-text";

describe("inputTextIssues", () => {
  it("names a refused value by its dotted path, keys escaped, and only that value", () => {
    const issues = inputTextIssues("json", {
      items: [
        { sessionId: "ok", routeId: "ok" },
        { sessionId: "ok", "ro\u0000ute": ["a", "b\u0007"] },
      ],
      fine: "line one\nline two\ttab",
    });
    expect(issues.map((issue) => [issue.field, issue.message.startsWith("field name ")])).toEqual([
      ["items.1.ro\\u0000ute", true],
      ["items.1.ro\\u0000ute.1", false],
    ]);
  });

  it("finds nothing in a body whose text follows the rules", () => {
    expect(inputTextIssues("json", { a: [{ b: "c" }, "d", 1, null, true], e: {} })).toEqual([]);
  });
});
