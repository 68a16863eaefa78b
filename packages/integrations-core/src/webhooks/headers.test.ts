import { describe, expect, it } from "vitest";
import { normalizeHeaders, pickHeaders } from "./headers";

describe("normalizeHeaders", () => {
  it("lower-cases and trims names and values from a Node-style record", () => {
    const headers = normalizeHeaders({
      "Content-Type": " application/json\t",
      "X-GitHub-Event": "push",
      "x-missing": undefined,
    });
    expect(headers).toEqual({ "content-type": "application/json", "x-github-event": "push" });
  });

  it("joins array values and names differing in case with ', ' in order", () => {
    expect(normalizeHeaders({ "set-cookie": ["a=1", "b=2"] })).toEqual({
      "set-cookie": "a=1, b=2",
    });
    expect(
      normalizeHeaders([
        ["Accept", "text/html"],
        ["x-other", "1"],
        ["accept", "application/json"],
      ]),
    ).toEqual({ accept: "text/html, application/json", "x-other": "1" });
  });

  it("reads a fetch Headers object", () => {
    const input = new Headers([
      ["Webhook-Id", "msg_1"],
      ["Set-Cookie", "a=1"],
      ["Set-Cookie", "b=2"],
    ]);
    expect(normalizeHeaders(input)).toEqual({ "webhook-id": "msg_1", "set-cookie": "a=1, b=2" });
  });

  it("drops names that are not HTTP tokens and values with CR, LF or NUL", () => {
    const headers = normalizeHeaders([
      ["bad name", "1"],
      ["", "2"],
      ["x(y)", "3"],
      ["x-split", "a\r\nx-injected: 1"],
      ["x-nul", "a\0b"],
      [" x-ok ", "4"],
    ]);
    expect(headers).toEqual({ "x-ok": "4" });
  });

  it("keeps an empty value but leaves empty elements out of a join", () => {
    expect(normalizeHeaders([["x-empty", "  "]])).toEqual({ "x-empty": "" });
    expect(
      normalizeHeaders([
        ["x-list", ""],
        ["x-list", "a"],
        ["x-list", " "],
      ]),
    ).toEqual({ "x-list": "a" });
  });

  it("returns a frozen record where __proto__ is plain data", () => {
    const headers = normalizeHeaders([["__proto__", "x"]]);
    expect(Object.isFrozen(headers)).toBe(true);
    expect(Object.hasOwn(headers, "__proto__")).toBe(true);
    expect(Object.getOwnPropertyDescriptor(headers, "__proto__")?.value).toBe("x");
    expect(Object.getPrototypeOf(headers)).toBe(Object.prototype);
  });
});

describe("pickHeaders", () => {
  it("keeps only the named headers, matching names case-insensitively", () => {
    const headers = normalizeHeaders({
      "X-GitHub-Delivery": "d1",
      "X-Hub-Signature-256": "s",
      Host: "h",
    });
    const picked = pickHeaders(headers, ["x-github-delivery", "X-Hub-Signature-256", "x-absent"]);
    expect(picked).toEqual({ "x-github-delivery": "d1", "x-hub-signature-256": "s" });
    expect(Object.isFrozen(picked)).toBe(true);
  });

  it("does not pick inherited properties", () => {
    expect(pickHeaders(normalizeHeaders({}), ["constructor", "toString"])).toEqual({});
  });
});
