import { describe, expect, it } from "vitest";
import { contentCodingOf } from "./content-decoding";

describe("contentCodingOf", () => {
  it("names the one coding the gateway can decode", () => {
    expect(contentCodingOf(undefined)).toBe("identity");
    expect(contentCodingOf("")).toBe("identity");
    expect(contentCodingOf("identity")).toBe("identity");
    expect(contentCodingOf("GZip")).toBe("gzip");
    expect(contentCodingOf("x-gzip")).toBe("gzip");
    expect(contentCodingOf(" deflate ")).toBe("deflate");
    expect(contentCodingOf("br")).toBe("br");
    expect(contentCodingOf("identity, br")).toBe("br");
  });

  it("refuses unknown and stacked codings", () => {
    expect(contentCodingOf("zstd")).toBeNull();
    expect(contentCodingOf("compress")).toBeNull();
    expect(contentCodingOf("gzip, br")).toBeNull();
    expect(contentCodingOf(["gzip", "gzip"])).toBeNull();
    expect(contentCodingOf("__proto__")).toBeNull();
  });
});
