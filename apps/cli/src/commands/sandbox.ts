import { spawn } from "node:child_process";
import { constants } from "node:os";
import {
  type StartedSandboxSession,
  startedSessionSchema,
} from "@keyway/control-plane-api/sessions/schemas";
import { compiledPlanSchema, type McpServer } from "@keyway/integrations-core";
import { z } from "zod";
import { type ApiClient, CliError, usageError } from "../api-client";
import {
  type CliDeps,
  type Command,
  type CommandContext,
  positiveInteger,
  requiredOption,
  stringOption,
} from "../context";
import { EXIT } from "../exit-codes";
import { profilePath, resolveProfileId } from "../profile-ref";
import { formatEnvironment, isEnvFormat } from "../sandbox/env-format";
import { sandboxEnvironment } from "../sandbox/environment";
import { materialiseSandbox } from "../sandbox/materialise";
import { listMcpTools } from "../sandbox/mcp-tools";

/**
 * `keyway sandbox run | env | mcp-tools` (SPEC §9, docs/sandbox.md). They talk to the API as an
 * organization through the same client and settings as every other command (`KEYWAY_URL` /
 * `KEYWAY_TOKEN`, else the stored login), never to the database, and pass neither on to the
 * sandbox.
 */

export interface SignalSource {
  on(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  off(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
}

const SANDBOX_OPTIONS = {
  profile: { type: "string" },
  version: { type: "string" },
  home: { type: "string" },
  workspace: { type: "string" },
} as const;

const SANDBOX_HELP = `--profile ID|NAME [--version N (default: the latest)]. Without --home and --workspace, the
sandbox's files go to a fresh private directory (keyway-sandbox-… under the temporary directory).`;

export const sandboxCommands: Command[] = [
  {
    name: "sandbox run",
    summary: "run a command in a sandbox session, then revoke it and remove its files",
    args: ["command..."],
    options: { ...SANDBOX_OPTIONS, keep: { type: "boolean" } },
    help: `Starts a session, writes its files, CA bundle and Node preload, runs the command in the sandbox
environment (working directory: the workspace), then revokes the session and removes the files
(unless --keep) when the command exits, also when a signal ends it. SIGTERM, SIGHUP and SIGQUIT
sent to keyway are passed on. Exit code: the command's, 128 + n after signal n, 127 when it
cannot be started. ${SANDBOX_HELP}`,
    async run(context) {
      const api = await context.api();
      const session = await startSession(api, context);
      return sandboxRun(api, context, session, context.options.keep === true);
    },
  },
  {
    name: "sandbox env",
    summary: "start a session, write its files and print its environment (the session stays live)",
    options: { ...SANDBOX_OPTIONS, format: { type: "string" } },
    help: `--format shell (default) | dotenv | json (--json is --format json). The session stays live
until it expires; revoke it with keyway sessions revoke <id> when the sandbox is done. ${SANDBOX_HELP}`,
    async run(context) {
      const format = stringOption(context.options, "format") ?? (context.json ? "json" : "shell");
      if (!isEnvFormat(format)) throw usageError("--format must be shell, dotenv or json");
      const api = await context.api();
      const session = await startSession(api, context);
      try {
        const sandbox = await materialiseSandbox(session, layoutOptions(context));
        context.deps.stdout(formatEnvironment(sandboxEnvironment(session, sandbox.layout), format));
        context.deps.stderr(
          `keyway: session ${session.id} is live until ${session.expiresAt}; files in ${sandbox.layout.home} and ${sandbox.layout.workspace}. ` +
            `Revoke it with keyway sessions revoke ${session.id} when the sandbox is done.\n`,
        );
        return EXIT.ok;
      } catch (error) {
        await revokeSession(api, session.id).catch(() => {});
        throw error;
      }
    },
  },
  {
    name: "sandbox mcp-tools",
    summary: "per MCP server of a profile, the tools its allow-list leaves visible",
    options: { profile: { type: "string" }, version: { type: "string" } },
    help: `--profile ID|NAME [--version N]. Asks each server through the gateway (MCP SDK client) with
a short-lived session, revoked afterwards. Exit code 1 when a server could not be listed.
--json: { servers: [{ name, url, tools: [{ name, description? }], error? }] }.`,
    async run(context) {
      const api = await context.api();
      const session = await startSession(api, context);
      try {
        const servers = await listMcpTools(session, await planMcpServers(api, session));
        context.out.result({ servers }, () =>
          context.out.table(
            ["server", "tool", "description"],
            servers.flatMap((s) =>
              s.error !== undefined
                ? [[s.name, "", `error: ${s.error}`]]
                : s.tools.length === 0
                  ? [[s.name, "", "(no tools visible)"]]
                  : s.tools.map((t) => [s.name, t.name, t.description ?? ""]),
            ),
          ),
        );
        return servers.some((s) => s.error !== undefined) ? EXIT.api : EXIT.ok;
      } finally {
        await revokeSession(api, session.id);
      }
    },
  },
];

const planResponseSchema = z.object({ digest: z.string(), plan: compiledPlanSchema });

/** Starts a session of `--profile` (`--version`), checked against the API's own response schema. */
async function startSession(
  api: ApiClient,
  context: CommandContext,
): Promise<StartedSandboxSession> {
  const profileId = await resolveProfileId(api, requiredOption(context.options, "profile"));
  const version = positiveInteger(stringOption(context.options, "version"), "--version");
  const body = await api.request("POST", "/v1/sandbox-sessions", {
    body: { profileId, ...(version ? { version } : {}) },
  });
  const parsed = startedSessionSchema.safeParse(body);
  if (!parsed.success)
    throw new CliError(
      "bad_response",
      "POST /v1/sandbox-sessions answered with an unexpected shape",
      EXIT.api,
    );
  return parsed.data;
}

async function planMcpServers(
  api: ApiClient,
  session: StartedSandboxSession,
): Promise<McpServer[]> {
  const path = `${profilePath(session.profileId)}/versions/${session.profileVersion}/plan`;
  const parsed = planResponseSchema.safeParse(await api.request("GET", path));
  if (!parsed.success)
    throw new CliError("bad_response", `GET ${path} answered with an unexpected shape`, EXIT.api);
  return parsed.data.plan.mcpServers;
}

async function revokeSession(api: ApiClient, id: string): Promise<void> {
  await api.request("DELETE", `/v1/sandbox-sessions/${encodeURIComponent(id)}`);
}

function layoutOptions(context: CommandContext) {
  return {
    home: stringOption(context.options, "home"),
    workspace: stringOption(context.options, "workspace"),
  };
}

async function sandboxRun(
  api: ApiClient,
  context: CommandContext,
  session: StartedSandboxSession,
  keep: boolean,
): Promise<number> {
  const { deps } = context;
  let exitCode: number = EXIT.api;
  let sandbox: Awaited<ReturnType<typeof materialiseSandbox>> | undefined;
  try {
    sandbox = await materialiseSandbox(session, layoutOptions(context));
    const env = sandboxEnvironment(session, sandbox.layout, deps.env ?? {});
    exitCode = await runChild(context.args, { env, cwd: sandbox.layout.workspace }, deps);
  } finally {
    // Revoked first: once the command is gone nothing may use the session's proxy credential.
    try {
      await revokeSession(api, session.id);
    } catch (error) {
      const reason = error instanceof CliError ? `${error.code}: ${error.message}` : String(error);
      deps.stderr(`keyway: could not revoke session ${session.id} (${reason})\n`);
      exitCode = exitCode === 0 ? EXIT.api : exitCode;
    }
    if (sandbox && !keep) await sandbox.remove();
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
  command: readonly string[],
  options: { env: Record<string, string>; cwd: string },
  deps: CliDeps,
): Promise<number> {
  const [file, ...args] = command as [string, ...string[]];
  const signals = deps.signals ?? { on: () => {}, off: () => {} };
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: "inherit", env: options.env, cwd: options.cwd });
    const forwarded: NodeJS.Signals[] = ["SIGTERM", "SIGHUP", "SIGQUIT"];
    if (!deps.stdinIsTTY) forwarded.push("SIGINT");
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    // At a terminal SIGINT still needs a listener, or it would end `keyway` before the cleanup.
    const ignore = () => {};
    for (const signal of forwarded) signals.on(signal, forward);
    if (deps.stdinIsTTY) signals.on("SIGINT", ignore);
    const done = (code: number) => {
      for (const signal of forwarded) signals.off(signal, forward);
      signals.off("SIGINT", ignore);
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
