import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { defaultOpenaiModels, OPENAI_DEFAULT_MODEL } from "./target-config-schema";

/**
 * Keyway's default OpenAI model table against the model catalog of the Codex CLI installed for
 * the system tests (`@openai/codex`, a root devDependency): a model Codex does not list makes it
 * warn that the model is unknown and run with generic settings.
 */

const codexEntry = (() => {
  try {
    const pkg = createRequire(import.meta.url).resolve("@openai/codex/package.json");
    const entry = join(dirname(pkg), "bin", "codex.js");
    return existsSync(entry) ? entry : undefined;
  } catch {
    return undefined;
  }
})();

const catalogSchema = z.object({
  models: z.array(
    z.object({
      slug: z.string(),
      visibility: z.string(),
      supported_in_api: z.boolean(),
      priority: z.number(),
      supported_reasoning_levels: z.array(z.object({ effort: z.string() })),
    }),
  ),
});

type CodexModel = z.infer<typeof catalogSchema>["models"][number];

/** The catalog compiled into the binary (`--bundled`: no network refresh). */
async function bundledCatalog(entry: string): Promise<CodexModel[]> {
  const home = await mkdtemp(join(tmpdir(), "keyway-codex-home-"));
  try {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [entry, "debug", "models", "--bundled"],
      { env: { PATH: process.env.PATH ?? "", CODEX_HOME: home }, maxBuffer: 64 * 1024 * 1024 },
    );
    return catalogSchema.parse(JSON.parse(stdout)).models;
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

const title = codexEntry
  ? "the default OpenAI models against the installed Codex's model catalog"
  : "skipped: @openai/codex (a root devDependency) is not installed, so there is no catalog to check";

/** Codex's listed models, in its priority order. */
let listed: CodexModel[] = [];

describe.skipIf(codexEntry === undefined)(title, () => {
  beforeAll(async () => {
    if (codexEntry === undefined) return;
    listed = (await bundledCatalog(codexEntry))
      .filter((m) => m.visibility === "list" && m.supported_in_api)
      .sort((a, b) => a.priority - b.priority);
  });

  it("lists every default model, with exactly the reasoning efforts Codex offers for it", () => {
    const efforts = new Map(
      listed.map((m) => [m.slug, m.supported_reasoning_levels.map((l) => l.effort)]),
    );
    const defaults = Object.entries(defaultOpenaiModels()).map(
      ([slug, entry]) => [slug, entry.reasoningEfforts] as const,
    );
    expect(defaults).toEqual(defaults.map(([slug]) => [slug, efforts.get(slug)]));
  });

  it("makes Codex's own first choice the default model", () => {
    expect(listed[0]?.slug).toBe(OPENAI_DEFAULT_MODEL);
    expect(Object.keys(defaultOpenaiModels())[0]).toBe(OPENAI_DEFAULT_MODEL);
  });
});
