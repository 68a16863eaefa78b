import { describe, expect, it } from "vitest";
import { formatTable } from "./table";

describe("formatTable", () => {
  it("pads columns to their widest cell and right-aligns numbers", () => {
    expect(
      formatTable(
        ["column", "rows"],
        [
          ["a.b", 3],
          ["longer.name", 12],
        ],
        [1],
      ),
    ).toBe(
      ["column       rows", "-----------  ----", "a.b             3", "longer.name    12"].join(
        "\n",
      ),
    );
  });

  it("prints just the header and rule for no rows", () => {
    expect(formatTable(["seq", "id"], [])).toBe("seq  id\n---  --");
  });
});
