// PostgreSQL helpers live in @keyway/db (production uses them for the embedded default database);
// they are re-exported here so tests have one import.
export {
  createPostgresDatabase,
  dropPostgresDatabase,
  type EmbeddedPostgresOptions,
  getFreePort,
  type PostgresServerAddress,
  postgresClient,
  postgresTcpUrl,
  postgresUrl,
  type RunningPostgres,
  startEmbeddedPostgres,
} from "@keyway/db";
export * from "./git-http-backend";
export * from "./http-servers";
export * from "./oauth-browser";
export * from "./tcp-proxy";
export * from "./test-database";
export * from "./tls";
