import type { Server } from "node:net";
import { ConfigError } from "./config-error";

/**
 * Binds a server to its configured address. An address that cannot be used (in use, not local)
 * is a setting to change, so the error is a `ConfigError` naming `key`.
 */
export function listenOn(server: Server, host: string, port: number, key: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const refuse = (error: Error) =>
      reject(new ConfigError("CONFIG_INVALID", [{ key, message: error.message }]));
    server.once("error", refuse);
    server.listen(port, host, () => {
      server.off("error", refuse);
      resolve();
    });
  });
}

/** What a running service must offer to be stopped. */
export interface StoppableService {
  close(): Promise<void>;
}

/**
 * The process side of a service entry (`control-plane-api`, `data-plane-gateway`): starts it, and
 * stops it on SIGINT or SIGTERM. A failure to start or stop is one report on stderr and exit
 * code 1: a configuration problem as its one-line-per-key message, anything else (a bug) with its
 * stack. Ctrl+C reaches every process in the terminal's group and `pnpm start` then sends SIGTERM
 * too: the first signal stops the service, later ones are ignored.
 */
export async function runServiceProcess(
  name: string,
  start: () => Promise<StoppableService>,
): Promise<void> {
  const fail = (when: string, error: unknown): never => {
    process.stderr.write(`${name}: ${when}: ${describeFailure(error)}\n`);
    process.exit(1);
  };
  const running = await start().catch((error: unknown) => fail("cannot start", error));
  let stopping = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, async () => {
      if (stopping) return;
      stopping = true;
      try {
        await running.close();
        process.exit(0);
      } catch (error) {
        fail("error while stopping", error);
      }
    });
  }
}

function describeFailure(error: unknown): string {
  if (error instanceof ConfigError) return error.message;
  if (error instanceof Error) return error.stack ?? error.message;
  return String(error);
}
