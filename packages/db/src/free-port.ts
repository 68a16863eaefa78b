import { createServer } from "node:net";

/**
 * Asks the operating system for a port that is free right now on `host`. Another process may take
 * it before the caller binds, so callers that can should listen on port 0 instead; this is for
 * child processes (such as PostgreSQL) that must be told their port up front.
 */
export function getFreePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close(() => reject(new Error(`could not read the port bound on ${host}`)));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}
