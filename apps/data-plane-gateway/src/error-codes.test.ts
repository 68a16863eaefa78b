import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { GATEWAY_ERRORS } from "./errors";

/** `docs/errors.md`'s "Gateway" section lists every code the gateway answers, with its status. */
const document = readFileSync(join(import.meta.dirname, "../../../docs/errors.md"), "utf8");
const section = document.slice(
  document.indexOf("## Gateway"),
  document.indexOf("## Not on the wire"),
);
const documented = new Map(
  [...section.matchAll(/^\| `([^`]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]),
);

describe("gateway error codes", () => {
  it("are lower snake_case and documented with their status", () => {
    for (const [code, status] of Object.entries(GATEWAY_ERRORS)) {
      expect(code).toMatch(/^[a-z][a-z0-9]*(_[a-z0-9]+)*$/);
      expect(documented.get(code), code).toBe(status);
    }
  });
});
