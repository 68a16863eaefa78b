import { parseArgs } from "node:util";
import { CliError, oneLine } from "./api-client";
import { type CliDeps, type Command, createContext, type OptionSpec } from "./context";
import { EXIT } from "./exit-codes";
import { COMMANDS } from "./registry";

export type { CliDeps } from "./context";
export { EXIT } from "./exit-codes";

/**
 * The `keyway` command line. `runCli` does everything and returns the exit code; `main.ts` only
 * wires it to the process, so tests drive `runCli` directly with their own environment and output.
 * Each command lives in `commands/<resource>.ts` and is listed in `registry.ts`.
 */

/** Options every command takes. */
const GLOBAL_OPTIONS: OptionSpec = {
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
};

const byName = new Map(COMMANDS.map((command) => [command.name, command]));

export async function runCli(argv: readonly string[], deps: CliDeps): Promise<number> {
  const words = leadingWords(argv);
  if (words.length === 0 || words[0] === "help") {
    const topic = words.slice(1);
    if (topic.length > 0) return help(topic, deps);
    deps.stdout(overview());
    return words.length === 0 && !argv.includes("--help") && !argv.includes("-h")
      ? EXIT.usage
      : EXIT.ok;
  }
  const match = findCommand(argv);
  if (!match) {
    const group = COMMANDS.filter((c) => c.name.split(" ")[0] === words[0]);
    if (group.length > 0 && words.length === 1) {
      // `keyway targets`: what can be done with targets.
      deps.stderr(`${groupHelp(group)}\n`);
      return EXIT.usage;
    }
    return fail(
      deps,
      new CliError("usage", `unknown command "${words.join(" ")}"`, EXIT.usage),
      "run keyway help",
    );
  }
  const { command, rest } = match;
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...rest],
      options: { ...GLOBAL_OPTIONS, ...command.options },
      allowPositionals: true,
      strict: true,
    }));
  } catch (error) {
    return fail(
      deps,
      new CliError("usage", parseArgsMessage(error), EXIT.usage),
      usageLine(command),
    );
  }
  if (values.help === true) {
    deps.stdout(commandHelp(command));
    return EXIT.ok;
  }
  const specs = command.args ?? [];
  const required = specs.filter((a) => !a.endsWith("?")).length;
  // A last argument spelled `name...` takes the rest (`sandbox run … -- <command...>`).
  const most = specs.at(-1)?.endsWith("...") ? Number.POSITIVE_INFINITY : specs.length;
  if (positionals.length < required || positionals.length > most) {
    const message =
      positionals.length < required
        ? `missing ${specs
            .slice(positionals.length, required)
            .map((a) => `<${a}>`)
            .join(" ")}`
        : `unexpected argument "${positionals[specs.length]}"`;
    return fail(deps, new CliError("usage", message, EXIT.usage), usageLine(command));
  }
  try {
    const context = createContext(
      deps,
      positionals,
      values as Record<string, string | boolean | string[] | undefined>,
    );
    return (await command.run(context)) ?? EXIT.ok;
  } catch (error) {
    if (error instanceof CliError)
      return fail(deps, error, error.code === "usage" ? usageLine(command) : undefined);
    throw error;
  }
}

/** `error: <code>: <message>` — one line a script can match on the code. */
function fail(deps: CliDeps, error: CliError, hint?: string): number {
  deps.stderr(`error: ${error.code}: ${oneLine(error.message)}\n${hint ? `${hint}\n` : ""}`);
  return error.exitCode;
}

/** The command words: everything before the first option. */
function leadingWords(argv: readonly string[]): string[] {
  const words: string[] = [];
  for (const arg of argv) {
    if (arg.startsWith("-")) break;
    words.push(arg);
  }
  return words;
}

/**
 * The longest registered name the leading words of `argv` spell (`audit verify` before
 * `audit`); `rest` is what follows it.
 */
function findCommand(
  argv: readonly string[],
): { command: Command; rest: readonly string[] } | undefined {
  const words = leadingWords(argv);
  for (let n = Math.min(words.length, 2); n >= 1; n--) {
    const command = byName.get(words.slice(0, n).join(" "));
    if (command) return { command, rest: argv.slice(n) };
  }
  return undefined;
}

function parseArgsMessage(error: unknown): string {
  const { code, message } = error as { code?: string; message?: string };
  const token = /'(-[^']*)'/.exec(message ?? "")?.[1];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && token) return `unknown option ${token}`;
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && token)
    return `${token.replace(/ <value>$/, "")} needs a value`;
  return (message ?? "invalid arguments").split(". ")[0] ?? "invalid arguments";
}

function usageLine(command: Command): string {
  const specs = command.args ?? [];
  const rest = specs.find((a) => a.endsWith("..."));
  const args = specs
    .filter((a) => a !== rest)
    .map((a) => (a.endsWith("?") ? `[${a.slice(0, -1)}]` : `<${a}>`));
  return `usage: keyway ${[command.name, ...args].join(" ")}${command.options ? " [options]" : ""}${rest ? ` -- <${rest}>` : ""} [--json]`;
}

function commandHelp(command: Command): string {
  const options = Object.entries(command.options ?? {}).map(([name, spec]) => {
    const value = spec.type === "string" ? ` <${name}>` : "";
    return `  --${name}${value}${spec.multiple ? " (repeatable)" : ""}`;
  });
  return [
    usageLine(command),
    "",
    command.summary,
    ...(command.help ? ["", command.help] : []),
    ...(options.length ? ["", "options:", ...options] : []),
    "  --json  print the result as JSON",
    "",
  ].join("\n");
}

function groupHelp(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return commands.map((c) => `  keyway ${c.name.padEnd(width)}  ${c.summary}`).join("\n");
}

function overview(): string {
  return `usage: keyway <command> [arguments] [options] [--json]

${groupHelp(COMMANDS)}

The API is KEYWAY_URL with the bearer token KEYWAY_TOKEN, else what \`keyway login\` stored.
\`keyway <command> --help\` shows a command's arguments and options. Exit codes: 0 ok, 1 the API
answered with an error (or the check failed), 2 usage or configuration, 3 API unreachable,
4 gave up waiting.
`;
}

function help(topic: readonly string[], deps: CliDeps): number {
  const match = findCommand(topic);
  if (match) {
    deps.stdout(commandHelp(match.command));
    return EXIT.ok;
  }
  const group = COMMANDS.filter((c) => c.name.split(" ")[0] === topic[0]);
  if (group.length === 0)
    return fail(deps, new CliError("usage", `unknown command "${topic.join(" ")}"`, EXIT.usage));
  deps.stdout(`${groupHelp(group)}\n`);
  return EXIT.ok;
}
