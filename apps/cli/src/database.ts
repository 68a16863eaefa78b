import type { KeywayConfig } from "@keyway/config";
import type { DatabaseHandle } from "@keyway/db";
import { CliError, oneLine } from "./api-client";
import { type CommandContext, stringOption } from "./context";
import { EXIT } from "./exit-codes";

/**
 * For the commands that work on the database itself, not through the API (`keys rotate`,
 * `audit verify --from-database`): loads keyway.toml (`--config`, else `$KEYWAY_CONFIG`, else
 * ./keyway.toml) and connects to `database.url`.
 */
export async function loadCliConfig(context: CommandContext): Promise<KeywayConfig> {
  const path = stringOption(context.options, "config");
  const { env, cwd } = context.deps;
  // Loaded on use, like the database code: the API commands start without them.
  const { loadConfig } = await import("@keyway/config");
  return withConfigErrors(() =>
    loadConfig({
      ...(path !== undefined ? { path } : {}),
      ...(env !== undefined ? { env } : {}),
      ...(cwd !== undefined ? { cwd } : {}),
    }),
  );
}

/** Runs `body`, turning a `ConfigError` (a bad or missing setting) into the CLI's `config` error. */
export async function withConfigErrors<T>(body: () => T | Promise<T>): Promise<T> {
  const { ConfigError } = await import("@keyway/config");
  try {
    return await body();
  } catch (error) {
    if (error instanceof ConfigError)
      throw new CliError("config", oneLine(error.message), EXIT.usage);
    throw error;
  }
}

export async function withDatabase<T>(
  config: KeywayConfig,
  body: (database: DatabaseHandle) => Promise<T>,
): Promise<T> {
  // Without database.url the platform runs the embedded PostgreSQL; the CLI never starts its own
  // but connects to the running one (pnpm start) on its configured port.
  const { createDatabase, embeddedDatabaseUrl } = await import("@keyway/db");
  const url = config.database.url ?? embeddedDatabaseUrl(config.database.embedded.port);
  const database = createDatabase(url, { max: 2 });
  try {
    await database.sql`select 1`.catch(() => {
      throw new CliError(
        "unreachable",
        config.database.url === undefined
          ? "cannot reach the embedded database; start the platform first (pnpm start)"
          : "cannot reach the database at database.url",
        EXIT.unreachable,
      );
    });
    return await body(database);
  } finally {
    await database.close();
  }
}

export const CONFIG_OPTION = { config: { type: "string" } } as const;
