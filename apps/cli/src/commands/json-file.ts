import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { usageError } from "../api-client";
import type { CommandContext } from "../context";

/** Reads and parses a JSON file named on the command line (relative to the working directory). */
export async function readJsonFile(context: CommandContext, path: string): Promise<unknown> {
  const full = resolve(context.deps.cwd ?? ".", path);
  let text: string;
  try {
    text = await readFile(full, "utf8");
  } catch (error) {
    throw usageError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? "error"}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw usageError(`${path} is not JSON: ${(error as Error).message}`);
  }
}

/** A JSON object given inline (`--config '{"a":1}'`). */
export function parseJsonObject(text: string, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw usageError(`${what} is not JSON`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw usageError(`${what} must be a JSON object`);
  return parsed as Record<string, unknown>;
}

/**
 * `--set key=value` pairs merged into an object; a value that parses as JSON is taken as JSON
 * (`--set maxRepos=5`, `--set 'hosts=["a"]'`), anything else as a string.
 */
export function applySettings(
  base: Record<string, unknown>,
  settings: readonly string[],
): Record<string, unknown> {
  const result = { ...base };
  for (const setting of settings) {
    const eq = setting.indexOf("=");
    if (eq <= 0) throw usageError(`--set needs key=value, got "${setting}"`);
    const raw = setting.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // Not JSON: a plain string.
    }
    result[setting.slice(0, eq)] = value;
  }
  return result;
}
