import { loadConfig, runServiceProcess, type StoppableService } from "@keyway/config";
import { EMBEDDED_DATABASE_NAME, startEmbeddedPostgres } from "@keyway/db";
import { startControlPlane } from "./server";

/**
 * Entry for `control-plane-api`: loads keyway.toml (+ KEYWAY_* overrides) and serves. With no
 * database URL configured it starts the embedded PostgreSQL in the configured data directory and
 * stops it on shutdown; `runServiceProcess` reports failures and handles signals.
 */
async function start(): Promise<StoppableService> {
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

await runServiceProcess("control-plane-api", start);
