import { describe, expect, it } from "vitest";
import { applySettings, parseJsonObject } from "./json-file";

describe("applySettings", () => {
  it("parses JSON values and keeps anything else as a string", () => {
    expect(
      applySettings({ baseUrl: "http://a", keep: 1 }, [
        "baseUrl=http://b/v1",
        "port=8443",
        'webhook={"scheme":"standard-webhooks"}',
        "name=a=b",
      ]),
    ).toEqual({
      baseUrl: "http://b/v1",
      keep: 1,
      port: 8443,
      webhook: { scheme: "standard-webhooks" },
      name: "a=b",
    });
  });

  it("needs key=value", () => {
    expect(() => applySettings({}, ["=x"])).toThrow('--set needs key=value, got "=x"');
    expect(() => applySettings({}, ["flag"])).toThrow("--set needs key=value");
  });
});

describe("parseJsonObject", () => {
  it("accepts only an object", () => {
    expect(parseJsonObject('{"a":1}', "--config")).toEqual({ a: 1 });
    expect(() => parseJsonObject("[1]", "--config")).toThrow("--config must be a JSON object");
    expect(() => parseJsonObject("{", "--config")).toThrow("--config is not JSON");
  });
});
