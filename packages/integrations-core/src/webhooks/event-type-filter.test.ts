import { describe, expect, it } from "vitest";
import { isEventTypePattern, matchesEventType, subscribesTo } from "./event-type-filter";

describe("event type filters", () => {
  it("matches exact types, prefixes at segment boundaries, and everything", () => {
    expect(matchesEventType("github.push", "github.push")).toBe(true);
    expect(matchesEventType("github.push", "github.push.x")).toBe(false);
    expect(matchesEventType("github.pull_request.*", "github.pull_request.opened")).toBe(true);
    expect(matchesEventType("github.pull_request.*", "github.pull_request.review.x")).toBe(true);
    expect(matchesEventType("github.pull_request.*", "github.pull_request")).toBe(false);
    expect(matchesEventType("github.pull_request.*", "github.pull_request_review.submitted")).toBe(
      false,
    );
    expect(matchesEventType("github.*", "slack.message")).toBe(false);
    expect(matchesEventType("*", "anything.at.all")).toBe(true);
    expect(subscribesTo(["slack.*", "github.push"], "github.push")).toBe(true);
    expect(subscribesTo([], "github.push")).toBe(false);
  });

  it("accepts well-formed patterns only", () => {
    for (const ok of ["*", "github.push", "github.pull_request.*", "http-api.invoice.paid", "a"]) {
      expect(isEventTypePattern(ok), ok).toBe(true);
    }
    for (const bad of [
      "",
      "github.*.opened",
      "*.push",
      "GitHub.push",
      "a..b",
      "a.",
      ".a",
      "a b",
      "a.**",
      "x".repeat(201),
    ]) {
      expect(isEventTypePattern(bad), bad).toBe(false);
    }
  });
});
