import { EMBEDDED_DATABASE_NAME, embeddedDatabaseUrl, startEmbeddedPostgres } from "@keyway/db";
import type { SupervisedProcess } from "./supervisor";

/**
 * The embedded PostgreSQL as a supervised process: started (and restarted after a crash) on the
 * same data directory and port, so the services' database URL (through the server's Unix-domain
 * socket, whose directory follows the port) stays valid and their connection pools reconnect on
 * their own.
 */
export function embeddedDatabase(options: { dataDir: string; port: number }): {
  process: SupervisedProcess;
  url: string;
} {
  return {
    url: embeddedDatabaseUrl(options.port, "socket"),
    process: {
      name: "PostgreSQL",
      async start() {
        const pg = await startEmbeddedPostgres(options).catch((error: unknown) => {
          // The first line says where; the rest (the server's output) stays in `cause`.
          const message = error instanceof Error ? error.message : String(error);
          const where = message.split("\n", 1)[0]?.replace(/^PostgreSQL /, "");
          throw new Error(where, { cause: error });
        });
        try {
          await pg.createDatabase(EMBEDDED_DATABASE_NAME, { ifNotExists: true });
        } catch (error) {
          await pg.stop();
          throw error;
        }
        return { pid: pg.pid, exited: pg.exited, stop: () => pg.stop() };
      },
    },
  };
}
