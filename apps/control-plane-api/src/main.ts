import { describeServiceFailure, loadConfig } from "@keyway/config";
import { EMBEDDED_DATABASE_NAME, startEmbeddedPostgres } from "@keyway/db";
import { startControlPlane } from "./server";

/**
 * Entry for `control-plane-api`: loads keyway.toml (+ KEYWAY_* overrides) and serves. With no
 * database URL configured it starts the embedded PostgreSQL in the configured data directory and
 * stops it on shutdown. A start-up failure is reported on stderr with exit code 1: configuration
 * problems as one line naming the key, anything else with its stack.
 */
async function start(): Promise<{ close(): Promise<void> }> {
  const config = await loadConfig();
  let databaseUrl = config.database.url;
  let stopDatabase = async () => {};
  if (databaseUrl === undefined) {
    const pg = await startEmbeddedPostgres({
      dataDir: config.database.embedded.data_dir,
      port: config.database.embedded.port,
    });
    await pg.createDatabase(EMBEDDED_DATABASE_NAME, { ifNotExists: true });
    databaseUrl = pg.url(EMBEDDED_DATABASE_NAME);
    stopDatabase = () => pg.stop();
  }
  try {
    const running = await startControlPlane(config, { databaseUrl });
    return {
      async close() {
        await running.close();
        await stopDatabase();
      },
    };
  } catch (error) {
    await stopDatabase();
    throw error;
  }
}

const running = await start().catch((error: unknown) => {
  process.stderr.write(`control-plane-api: cannot start: ${describeServiceFailure(error)}\n`);
  process.exit(1);
});

// Ctrl+C reaches every process in the terminal's group and `pnpm start` then sends SIGTERM too:
// the first signal shuts down, later ones are ignored.
let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    try {
      await running.close();
      process.exit(0);
    } catch (error) {
      process.stderr.write(
        `control-plane-api: error while stopping: ${describeServiceFailure(error)}\n`,
      );
      process.exit(1);
    }
  });
}
