import { describe, expect, it } from "vitest";
import { joinUrl, splitBaseUrl } from "./target-url";

describe("splitBaseUrl", () => {
  it.each([
    ["https://api.openai.com/v1", "https://api.openai.com", "api.openai.com", "/v1"],
    ["https://API.example.com:443/v1/", "https://api.example.com", "api.example.com", "/v1"],
    ["http://internal.example:8080", "http://internal.example:8080", "internal.example:8080", "/"],
    ["http://10.0.0.5:80/api", "http://10.0.0.5", "10.0.0.5", "/api"],
    [
      "https://ghe.example.com:8443/api/v3",
      "https://ghe.example.com:8443",
      "ghe.example.com:8443",
      "/api/v3",
    ],
  ])("%s", (input, origin, host, pathPrefix) => {
    expect(splitBaseUrl(input)).toEqual({ origin, host, pathPrefix });
  });

  it("refuses other schemes", () => {
    expect(() => splitBaseUrl("ftp://x.example")).toThrow(/http/);
  });

  it("joins without doubled slashes", () => {
    expect(joinUrl("https://x.example/v1/", "/models")).toBe("https://x.example/v1/models");
  });
});
