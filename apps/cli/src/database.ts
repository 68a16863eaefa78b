import { type KeywayConfig, loadConfig } from "@keyway/config";
import { createDatabase, type DatabaseHandle, embeddedDatabaseUrl } from "@keyway/db";
import { CliError } from "./api-client";
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
  return loadConfig({
    ...(path !== undefined ? { path } : {}),
    ...(env !== undefined ? { env } : {}),
    ...(cwd !== undefined ? { cwd } : {}),
  });
}

export async function withDatabase<T>(
  config: KeywayConfig,
  body: (database: DatabaseHandle) => Promise<T>,
): Promise<T> {
  // Without database.url the platform runs the embedded PostgreSQL; the CLI never starts its own
  // but connects to the running one (pnpm start) on its configured port.
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
