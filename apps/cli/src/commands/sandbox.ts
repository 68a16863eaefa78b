import { spawn } from "node:child_process";
import { constants } from "node:os";
import { parseArgs } from "node:util";
import { formatEnvironment, isEnvFormat } from "../sandbox/env-format";
import { sandboxEnvironment } from "../sandbox/environment";
import { materialiseSandbox } from "../sandbox/materialise";
import { listMcpTools } from "../sandbox/mcp-tools";
import { ApiError, type SessionApi, sessionApi } from "../sandbox/session-api";
import { formatTable } from "../table";

/**
 * `keyway sandbox run | env | mcp-tools` (SPEC §9, docs/sandbox.md). These talk to the API as an
 * organization (`KEYWAY_URL`, `KEYWAY_TOKEN`), not to the database, so they need no config file.
 */

export interface SandboxCommandDeps {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** The parent environment: `KEYWAY_URL`/`KEYWAY_TOKEN`, and the base of the child's. */
  env: Readonly<Record<string, string | undefined>>;
  /** Where signals to `keyway` arrive (the process); forwarded to the child. */
  signals: SignalSource;
  stdinIsTTY: boolean;
  /** For tests: a session API other than the one `KEYWAY_URL` names. */
  api?: SessionApi;
}

export interface SignalSource {
  on(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  off(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
}

export const SANDBOX_USAGE = `usage:
  keyway sandbox run --profile <id|name> [--version N] [--home DIR] [--workspace DIR] [--keep] -- <command> [args...]
  keyway sandbox env --profile <id|name> [--version N] [--home DIR] [--workspace DIR] [--format shell|dotenv|json]
  keyway sandbox mcp-tools --profile <id|name> [--version N] [--json]

  run        start a session, write its files, run the command inside its environment, then
             revoke the session and remove the files (unless --keep) when the command exits
  env        start a session, write its files and print its environment (the session stays live)
  mcp-tools  list, per MCP server of the profile, the tools its allow-list leaves visible,
             asked through the gateway with a short-lived session

environment: KEYWAY_URL (API base URL), KEYWAY_TOKEN (organization API token)
`;

const OPTIONS = {
  profile: { type: "string" },
  version: { type: "string" },
  home: { type: "string" },
  workspace: { type: "string" },
  keep: { type: "boolean" },
  format: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

class UsageError extends Error {}

export async function runSandboxCommand(
  argv: readonly string[],
  deps: SandboxCommandDeps,
): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      options: OPTIONS,
      allowPositionals: true,
    });
    const [sub, ...rest] = positionals;
    if (values.help || sub === undefined) {
      deps.stdout(SANDBOX_USAGE);
      return values.help ? 0 : 2;
    }
    if (values.profile === undefined) throw new UsageError("--profile is required");
    const version = parseVersion(values.version);
    const api = deps.api ?? sessionApi(apiTarget(deps.env));
    const common = {
      profile: values.profile,
      version,
      home: values.home,
      workspace: values.workspace,
    };
    if (sub === "run") {
      if (rest.length === 0) throw new UsageError("sandbox run needs a command after --");
      return await sandboxRun(api, deps, { ...common, keep: values.keep === true, command: rest });
    }
    if (rest.length > 0) throw new UsageError(`unexpected argument ${rest[0]}`);
    if (sub === "env") {
      const format = values.format ?? "shell";
      if (!isEnvFormat(format)) throw new UsageError("--format must be shell, dotenv or json");
      return await sandboxEnv(api, deps, { ...common, format });
    }
    if (sub === "mcp-tools")
      return await sandboxMcpTools(api, deps, { ...common, json: values.json === true });
    throw new UsageError(`unknown sandbox command "${sub}"`);
  } catch (error) {
    if (error instanceof UsageError || isParseArgsError(error)) {
      deps.stderr(`keyway: ${(error as Error).message}\n\n${SANDBOX_USAGE}`);
      return 2;
    }
    if (error instanceof ApiError) {
      deps.stderr(`keyway: ${error.message} (${error.code})\n`);
      return 1;
    }
    throw error;
  }
}

interface CommonOptions {
  profile: string;
  version: number | undefined;
  home: string | undefined;
  workspace: string | undefined;
}

async function sandboxRun(
  api: SessionApi,
  deps: SandboxCommandDeps,
  options: CommonOptions & { keep: boolean; command: string[] },
): Promise<number> {
  const session = await api.startSession(options.profile, options.version);
  let exitCode = 1;
  let sandbox: Awaited<ReturnType<typeof materialiseSandbox>> | undefined;
  try {
    sandbox = await materialiseSandbox(session, options);
    const env = sandboxEnvironment(session, sandbox.layout, deps.env);
    exitCode = await runChild(options.command, { env, cwd: sandbox.layout.workspace }, deps);
  } finally {
    // Revoked first: once the command is gone nothing may use the session's proxy credential.
    try {
      await api.revokeSession(session.id);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      deps.stderr(`keyway: could not revoke session ${session.id}: ${message}\n`);
      exitCode = exitCode === 0 ? 1 : exitCode;
    }
    if (sandbox && !options.keep) await sandbox.remove();
    else if (sandbox) deps.stderr(`keyway: kept the sandbox files in ${sandbox.layout.home}\n`);
  }
  return exitCode;
}

/**
 * Runs the command with the terminal (stdio inherited) and returns its exit code, 128 + n when a
 * signal n ended it (the shell's convention), 127 when it could not be started. SIGTERM, SIGHUP
 * and SIGQUIT sent to `keyway` are passed on. SIGINT is passed on only without a terminal: at a
 * terminal, Ctrl+C already reaches the whole foreground process group, the child included, and a
 * second copy would make agents that treat a double Ctrl+C as "quit" exit.
 */
function runChild(
  command: string[],
  options: { env: Record<string, string>; cwd: string },
  deps: SandboxCommandDeps,
): Promise<number> {
  const [file, ...args] = command as [string, ...string[]];
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: "inherit", env: options.env, cwd: options.cwd });
    const forwarded: NodeJS.Signals[] = ["SIGTERM", "SIGHUP", "SIGQUIT"];
    if (!deps.stdinIsTTY) forwarded.push("SIGINT");
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    // At a terminal SIGINT still needs a listener, or it would end `keyway` before the cleanup.
    const ignore = () => {};
    for (const signal of forwarded) deps.signals.on(signal, forward);
    if (deps.stdinIsTTY) deps.signals.on("SIGINT", ignore);
    const done = (code: number) => {
      for (const signal of forwarded) deps.signals.off(signal, forward);
      deps.signals.off("SIGINT", ignore);
      resolve(code);
    };
    child.on("error", (error) => {
      deps.stderr(`keyway: cannot run ${file}: ${error.message}\n`);
      done(127);
    });
    child.on("exit", (code, signal) => {
      done(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0));
    });
  });
}

async function sandboxEnv(
  api: SessionApi,
  deps: SandboxCommandDeps,
  options: CommonOptions & { format: "shell" | "dotenv" | "json" },
): Promise<number> {
  const session = await api.startSession(options.profile, options.version);
  try {
    const sandbox = await materialiseSandbox(session, options);
    deps.stdout(formatEnvironment(sandboxEnvironment(session, sandbox.layout), options.format));
    deps.stderr(
      `keyway: session ${session.id} is live until ${session.expiresAt}; files in ${sandbox.layout.home} and ${sandbox.layout.workspace}. ` +
        `Revoke it with DELETE /v1/sandbox-sessions/${session.id} when the sandbox is done.\n`,
    );
    return 0;
  } catch (error) {
    await api.revokeSession(session.id).catch(() => {});
    throw error;
  }
}

async function sandboxMcpTools(
  api: SessionApi,
  deps: SandboxCommandDeps,
  options: CommonOptions & { json: boolean },
): Promise<number> {
  const session = await api.startSession(options.profile, options.version);
  try {
    const servers = await listMcpTools(session, await api.mcpServers(session));
    if (options.json) deps.stdout(`${JSON.stringify({ servers }, null, 2)}\n`);
    else {
      const rows = servers.flatMap((s) =>
        s.error !== undefined
          ? [[s.name, "", `error: ${s.error}`]]
          : s.tools.length === 0
            ? [[s.name, "", "(no tools visible)"]]
            : s.tools.map((t) => [s.name, t.name, t.description ?? ""]),
      );
      deps.stdout(`${formatTable(["server", "tool", "description"], rows)}\n`);
    }
    return servers.some((s) => s.error !== undefined) ? 1 : 0;
  } finally {
    await api.revokeSession(session.id);
  }
}

function apiTarget(env: SandboxCommandDeps["env"]) {
  const url = env.KEYWAY_URL;
  const token = env.KEYWAY_TOKEN;
  if (!url) throw new UsageError("set KEYWAY_URL to the Keyway API's URL");
  if (!token) throw new UsageError("set KEYWAY_TOKEN to an organization API token");
  return { url, token };
}

function parseVersion(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9][0-9]{0,9}$/.test(value))
    throw new UsageError("--version must be a positive integer");
  return Number(value);
}

function isParseArgsError(error: unknown): boolean {
  return (
    error instanceof TypeError &&
    "code" in error &&
    typeof error.code === "string" &&
    error.code.startsWith("ERR_PARSE_ARGS")
  );
}
