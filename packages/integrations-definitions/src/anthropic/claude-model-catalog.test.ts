import { createReadStream, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ANTHROPIC_DEFAULT_MODEL, defaultAnthropicModels } from "./target-config-schema";

/**
 * Keyway's default Anthropic models against the model catalog compiled into the Claude Code
 * binary installed for the system tests (`@anthropic-ai/claude-code`, a root devDependency).
 * Claude Code has no command that prints its catalog; the catalog is an object literal in its
 * bundle, with one `{id:"<model>",family:"<family>",…}` entry per model and `aliases` naming
 * what `sonnet`, `opus`, … resolve to (`<alias>:{default:"<model>"`); models with a retirement
 * date are keys of a separate table (`"<model>":{modelName:"…",retirementDates:`).
 */

const claudeBinary = (() => {
  try {
    const pkg = createRequire(import.meta.url).resolve("@anthropic-ai/claude-code/package.json");
    const binary = join(dirname(pkg), "bin", "claude.exe");
    return existsSync(binary) ? binary : undefined;
  } catch {
    return undefined;
  }
})();

/** Which of `needles` occur in the file, read in chunks (the binary is ~400 MB). */
async function occurrences(file: string, needles: readonly string[]): Promise<Set<string>> {
  const found = new Set<string>();
  const longest = Math.max(...needles.map((n) => Buffer.byteLength(n)));
  let tail = Buffer.alloc(0);
  for await (const chunk of createReadStream(file, { highWaterMark: 8 * 1024 * 1024 })) {
    // The previous chunk's tail is kept so a needle spanning two chunks is still found.
    const window = Buffer.concat([tail, chunk as Buffer]);
    for (const needle of needles)
      if (!found.has(needle) && window.includes(needle)) found.add(needle);
    tail = window.subarray(Math.max(0, window.length - longest));
  }
  return found;
}

const title = claudeBinary
  ? "the default Anthropic models against the installed Claude Code's model catalog"
  : "skipped: @anthropic-ai/claude-code (a root devDependency) is not installed, so there is no catalog to check";

const entryOf = (model: string) => `{id:"${model}",family:"`;
const retirementOf = (model: string) => `"${model}":{modelName:"`;
const SONNET_ALIAS = `sonnet:{default:"${ANTHROPIC_DEFAULT_MODEL}"`;
let found = new Set<string>();

describe.skipIf(claudeBinary === undefined)(title, () => {
  beforeAll(async () => {
    if (claudeBinary === undefined) return;
    found = await occurrences(claudeBinary, [
      ...defaultAnthropicModels().map(entryOf),
      ...defaultAnthropicModels().map(retirementOf),
      SONNET_ALIAS,
    ]);
  });

  it("carries an entry for every default model", () => {
    const models = defaultAnthropicModels();
    expect(models.filter((m) => !found.has(entryOf(m)))).toEqual([]);
  });

  it("names no model Claude Code lists with a retirement date", () => {
    const models = defaultAnthropicModels();
    expect(models.filter((m) => found.has(retirementOf(m)))).toEqual([]);
  });

  it("makes the model Claude Code's `sonnet` alias names the default", () => {
    expect(found.has(SONNET_ALIAS)).toBe(true);
    expect(defaultAnthropicModels()[0]).toBe(ANTHROPIC_DEFAULT_MODEL);
  });
});
