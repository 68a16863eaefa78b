import { loadConfig } from "@keyway/config";
import { startEmbeddedPostgres } from "@keyway/db";
import { startControlPlane } from "./server";

/**
 * Entry for `control-plane-api`: loads keyway.toml (+ KEYWAY_* overrides) and serves. With no
 * database URL configured it starts the embedded PostgreSQL in the configured data directory.
 */
const config = await loadConfig();
let databaseUrl = config.database.url;
if (databaseUrl === undefined) {
  const pg = await startEmbeddedPostgres({
    dataDir: config.database.embedded.data_dir,
    port: config.database.embedded.port,
  });
  await pg.createDatabase("keyway", { ifNotExists: true });
  databaseUrl = pg.url("keyway");
}
const running = await startControlPlane(config, { databaseUrl });
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => void running.close().then(() => process.exit(0)));
}
