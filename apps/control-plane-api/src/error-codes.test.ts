import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { COMPILE_ERROR_CATEGORIES } from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import { API_ERROR_CODES } from "./errors";
import { RESOLUTION_REFUSALS } from "./internal/refusals";

/** `docs/errors.md`: the convention every code follows, and the list of codes with meanings. */
const root = join(import.meta.dirname, "../../..");
const document = readFileSync(join(root, "docs/errors.md"), "utf8");
const documented = new Set([...document.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]));

const CODE = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/;
/** Field issue codes may also be a definition's `<familyId>.<reason>`. */
const ISSUE_CODE = /^([a-z][a-z0-9-]*\.)?[a-z][a-z0-9]*(_[a-z0-9]+)*$/;

const wireCodes = [...API_ERROR_CODES, ...Object.keys(COMPILE_ERROR_CATEGORIES)];

/** Non-test TypeScript files under `dir`. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts") && !e.name.endsWith(".test.ts"))
    .map((e) => join(e.parentPath, e.name));
}

describe("error codes", () => {
  it("are lower snake_case, in the registries and in docs/errors.md", () => {
    expect(wireCodes.filter((code) => !CODE.test(code))).toEqual([]);
    expect(wireCodes.filter((code) => !documented.has(code))).toEqual([]);
    expect(Object.keys(RESOLUTION_REFUSALS).filter((code) => !wireCodes.includes(code))).toEqual(
      [],
    );
  });

  it("listed in docs/errors.md all follow the convention", () => {
    expect(documented.size).toBeGreaterThan(50);
    expect([...documented].filter((code) => !CODE.test(code ?? ""))).toEqual([]);
  });

  it("written as `code:` literals in the API and the integration packages follow it too", () => {
    const offenders: string[] = [];
    for (const dir of [
      "apps/control-plane-api/src",
      "packages/integrations-core/src",
      "packages/integrations-definitions/src",
    ]) {
      for (const file of sources(join(root, dir))) {
        for (const match of readFileSync(file, "utf8").matchAll(/\bcode: "([^"]+)"/g)) {
          if (!ISSUE_CODE.test(match[1] ?? "")) offenders.push(`${file}: ${match[1]}`);
        }
      }
    }
    expect(offenders).toEqual([]);
  });
});
