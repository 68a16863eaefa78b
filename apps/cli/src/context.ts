import type { ParseArgsConfig } from "node:util";
import type { Env } from "@keyway/config";
import type { Clock } from "@keyway/crypto";
import { type ApiClient, CliError, configError, createApiClient, usageError } from "./api-client";
import type { SignalSource } from "./commands/sandbox";
import { EXIT } from "./exit-codes";
import { readStoredLogin } from "./login-store";
import { createOutput, type Output } from "./output";
import type { SecretInput } from "./secret-input";

/** What the CLI needs from its process; `main.ts` wires the real ones, tests their own. */
export interface CliDeps {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  clock: Clock;
  /** `KEYWAY_*`, `XDG_CONFIG_HOME`, `HOME`. For `keys rotate` and `audit verify --from-database`, undefined means the process environment (read by @keyway/config). */
  env?: Env;
  cwd?: string;
  /** Where secrets come from: a hidden prompt on a terminal, else standard input. */
  stdin?: SecretInput;
  fetch?: typeof globalThis.fetch;
  /** Opens a URL in a browser; resolves false when no opener exists. */
  openUrl?: (url: string) => Promise<boolean>;
  /** Waits between polls (`connect oauth`); tests pass a quicker one. */
  sleep?: (ms: number) => Promise<void>;
  /** Signals to `keyway` (the process), passed on to `sandbox run`'s command. */
  signals?: SignalSource;
  stdinIsTTY?: boolean;
}

export type OptionSpec = NonNullable<ParseArgsConfig["options"]>;
export type OptionValues = Record<string, string | boolean | string[] | undefined>;

export interface CommandContext {
  deps: CliDeps;
  /** Positional arguments after the command words, checked against `Command.args`. */
  args: string[];
  options: OptionValues;
  json: boolean;
  out: Output;
  /** The API client; throws a usage error when no URL or token is configured. */
  api(): Promise<ApiClient>;
}

export interface Command {
  /** The words that select it: `"targets list"`, `"login"`. */
  name: string;
  summary: string;
  /** Positional arguments, in order; a trailing `?` marks an optional one. */
  args?: readonly string[];
  options?: OptionSpec;
  /** Shown under the command's usage line by `--help`. */
  help?: string;
  /** Resolves with an exit code, or nothing for success. */
  run(context: CommandContext): Promise<number | undefined>;
}

export function createContext(
  deps: CliDeps,
  args: string[],
  options: OptionValues,
): CommandContext {
  const json = options.json === true;
  let client: ApiClient | undefined;
  return {
    deps,
    args,
    options,
    json,
    out: createOutput(deps.stdout, json),
    async api() {
      client ??= await apiClientFromSettings(deps);
      return client;
    },
  };
}

/** `KEYWAY_URL` / `KEYWAY_TOKEN` win over the stored login, each on its own. */
async function apiClientFromSettings(deps: CliDeps): Promise<ApiClient> {
  const env = deps.env ?? {};
  const stored = await readStoredLogin(env);
  const url = nonEmpty(env.KEYWAY_URL) ?? stored?.url;
  const token = nonEmpty(env.KEYWAY_TOKEN) ?? stored?.token;
  if (url === undefined || token === undefined) {
    throw configError(
      "no API configured: run `keyway login --url URL` or set KEYWAY_URL and KEYWAY_TOKEN",
    );
  }
  try {
    new URL(url);
  } catch {
    throw configError(`KEYWAY_URL is not a URL: ${url}`);
  }
  return createApiClient({ url, token, ...(deps.fetch ? { fetch: deps.fetch } : {}) });
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

/** A string option's value, or undefined. */
export function stringOption(options: OptionValues, name: string): string | undefined {
  const value = options[name];
  return typeof value === "string" ? value : undefined;
}

export function requiredOption(options: OptionValues, name: string): string {
  const value = stringOption(options, name);
  if (value === undefined || value === "") throw usageError(`--${name} is required`);
  return value;
}

/** A positive integer option or argument (`--limit`, a version number). */
export function positiveInteger(value: string | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9][0-9]*$/.test(value))
    throw usageError(`${what} must be a positive integer, got "${value}"`);
  return Number(value);
}

export function argAt(context: CommandContext, index: number): string {
  const value = context.args[index];
  // `runCli` checks the count against `Command.args` before `run`, so this is a programming error.
  if (value === undefined) throw new CliError("internal", `missing argument ${index}`, EXIT.usage);
  return value;
}
