import {
  ConfigError,
  type Env,
  type KeywayConfig,
  loadConfig,
  requireSetting,
} from "@keyway/config";
import { createAuditSealer } from "@keyway/control-plane-api/audit/sealer";
import { type AuditProblem, verifyAuditChain } from "@keyway/control-plane-api/audit/service";
import { type KeyRotationResult, rotateKeys } from "@keyway/control-plane-api/keys/rotate";
import { createLogger } from "@keyway/control-plane-api/logger";
import { type Clock, createKeyRing } from "@keyway/crypto";
import { createDatabase, type DatabaseHandle, embeddedDatabaseUrl } from "@keyway/db";
import { formatTable } from "./table";

/**
 * The `keyway` command line. `runCli` does everything and returns the exit code; `main.ts` only
 * wires it to the process, so tests drive `runCli` directly with their own config and output.
 */

export interface CliDeps {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  clock: Clock;
  /** Environment for `KEYWAY_*` overrides; default the process environment (read by @keyway/config). */
  env?: Env;
  cwd?: string;
}

/** Exit codes: 0 success, 1 the command ran and found a problem, 2 usage or configuration error. */
export const EXIT = { ok: 0, problem: 1, usage: 2 } as const;

const USAGE = `usage: keyway <command> [--config FILE] [--json]

commands:
  keys rotate    re-encrypt every stored secret under the current master key (keys.master.current)
  audit verify   recompute the audit log's hash chain and report the first broken entry
  help           show this text

options:
  --config FILE  keyway.toml to load (default: $KEYWAY_CONFIG, else ./keyway.toml)
  --json         print the result as JSON
`;

interface ParsedArgs {
  command: string[];
  configPath?: string;
  json: boolean;
}

class UsageError extends Error {}

function parseArgs(argv: readonly string[]): ParsedArgs {
  const parsed: ParsedArgs = { command: [], json: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (arg === "--json") parsed.json = true;
    else if (arg === "--config") {
      const value = argv[++i];
      if (value === undefined || value.startsWith("--"))
        throw new UsageError("--config needs a file");
      parsed.configPath = value;
    } else if (arg.startsWith("--config=")) parsed.configPath = arg.slice("--config=".length);
    else if (arg === "--help" || arg === "-h") parsed.command = ["help"];
    else if (arg.startsWith("-")) throw new UsageError(`unknown option ${arg}`);
    else parsed.command.push(arg);
  }
  return parsed;
}

export async function runCli(argv: readonly string[], deps: CliDeps): Promise<number> {
  let args: ParsedArgs;
  try {
    args = parseArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    deps.stderr(`keyway: ${error.message}\n\n${USAGE}`);
    return EXIT.usage;
  }
  const command = args.command.join(" ");
  if (command === "" || command === "help") {
    deps.stdout(USAGE);
    return command === "" ? EXIT.usage : EXIT.ok;
  }
  const run = COMMANDS[command];
  if (!run) {
    deps.stderr(`keyway: unknown command "${command}"\n\n${USAGE}`);
    return EXIT.usage;
  }
  try {
    const config = await loadConfig({
      ...(args.configPath !== undefined ? { path: args.configPath } : {}),
      ...(deps.env !== undefined ? { env: deps.env } : {}),
      ...(deps.cwd !== undefined ? { cwd: deps.cwd } : {}),
    });
    return await run(config, args, deps);
  } catch (error) {
    if (error instanceof ConfigError) {
      deps.stderr(`keyway: ${error.message}\n`);
      return EXIT.usage;
    }
    throw error;
  }
}

type Command = (config: KeywayConfig, args: ParsedArgs, deps: CliDeps) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  "keys rotate": async (config, args, deps) => {
    const keyRing = createKeyRing(requireSetting(config.keys.master, "keys.master"));
    return withDatabase(config, deps, async ({ db }) => {
      const result = await rotateKeys(db, keyRing, { clock: deps.clock, actor: "cli:keys-rotate" });
      if (args.json) deps.stdout(`${JSON.stringify(result, null, 2)}\n`);
      else deps.stdout(describeRotation(result));
      return result.complete ? EXIT.ok : EXIT.problem;
    });
  },

  "audit verify": async (config, args, deps) => {
    const keyRing = createKeyRing(requireSetting(config.keys.master, "keys.master"));
    return withDatabase(config, deps, async ({ db }) => {
      // Entries recorded but not sealed yet (no API running, or just now) are sealed first, as an
      // API replica would; then every chain and its checkpoints are checked.
      const logger = createLogger({ level: "warn", write: (line) => deps.stderr(`${line}\n`) });
      const sealer = createAuditSealer({ db, keyRing, clock: deps.clock, logger });
      await sealer.sealNow({ checkpoint: true });
      const result = await verifyAuditChain(db, keyRing);
      if (args.json) deps.stdout(`${JSON.stringify(result, null, 2)}\n`);
      else if (result.ok) {
        deps.stdout(`audit chain ok: ${result.checkedEntries} entries checked\n`);
      } else {
        const bad = result.firstInvalid;
        deps.stdout(
          `audit chain BROKEN after ${result.checkedEntries} valid entries\n\n${formatTable(
            ["seq", "chain seq", "id", "problem"],
            bad ? [[bad.seq ?? "", bad.chainSeq, bad.id ?? "", AUDIT_PROBLEMS[bad.reason]]] : [],
            [0, 1],
          )}\n`,
        );
      }
      return result.ok ? EXIT.ok : EXIT.problem;
    });
  },
};

const AUDIT_PROBLEMS: Record<AuditProblem, string> = {
  hash_mismatch: "entry was altered",
  broken_link: "previous entry missing or altered (broken link)",
  checkpoint_head_missing: "newest entries removed (a signed checkpoint names a missing entry)",
  checkpoint_invalid: "checkpoint altered or not signed by this deployment's key",
};

class CliUnreachableError extends Error {
  constructor(readonly embedded: boolean) {
    super("database unreachable");
  }
}

async function withDatabase(
  config: KeywayConfig,
  deps: CliDeps,
  body: (database: DatabaseHandle) => Promise<number>,
): Promise<number> {
  // Without database.url the platform runs the embedded PostgreSQL; the CLI never starts its own
  // but connects to the running one (pnpm start) on its configured port.
  const url = config.database.url ?? embeddedDatabaseUrl(config.database.embedded.port);
  const database = createDatabase(url, { max: 2 });
  try {
    await database.sql`select 1`.catch(() => {
      throw new CliUnreachableError(config.database.url === undefined);
    });
    return await body(database);
  } catch (error) {
    if (error instanceof CliUnreachableError) {
      deps.stderr(
        error.embedded
          ? "keyway: cannot reach the embedded database; start the platform first (pnpm start).\n"
          : "keyway: cannot reach the database at database.url.\n",
      );
      return EXIT.usage;
    }
    throw error;
  } finally {
    await database.close();
  }
}

function describeRotation(result: KeyRotationResult): string {
  const table = formatTable(
    ["column", "rows", "re-encrypted", "failed"],
    result.columns.map((c) => [`${c.table}.${c.column}`, c.scanned, c.reencrypted, c.failed]),
    [1, 2, 3],
  );
  if (result.complete) {
    return `${table}\n\nEvery secret now uses key version ${result.keyVersion}; older keys can be removed from keys.master.\n`;
  }
  const failed = result.columns.flatMap((c) => c.failedIds.map((id) => `  ${c.table} ${id}`));
  return (
    `${table}\n\n${failed.length} row(s) did not decrypt with any key in the ring and were left as they are:\n` +
    `${failed.join("\n")}\nKeep the older keys until these rows are fixed or removed.\n`
  );
}
