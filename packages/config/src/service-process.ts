import type { Server } from "node:net";
import { ConfigError } from "./config-error";

/**
 * A port another process already listens on. Its message names the port and the setting that
 * chose it (`port 8080 (api.port) is in use`): the fix is to free the port or pick another.
 */
export class PortInUseError extends Error {
  override readonly name = "PortInUseError";
  readonly code = "PORT_IN_USE";
  constructor(
    readonly port: number,
    readonly key: string,
  ) {
    super(`port ${port} (${key}) is in use`);
  }
}

/**
 * Binds a server to its configured address. A port in use is a `PortInUseError`; any other
 * address that cannot be used (not local, not permitted) is a setting to change, so the error is
 * a `ConfigError` naming `key`.
 */
export function listenOn(server: Server, host: string, port: number, key: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const refuse = (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "EADDRINUSE"
          ? new PortInUseError(port, key)
          : new ConfigError("CONFIG_INVALID", [{ key, message: error.message }]),
      );
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
 * Sent over the IPC channel, when the process has one, once the service listens: the parent that
 * started it (`pnpm start`) learns that *its* child is up, not merely that something answers on
 * the port.
 */
export const SERVICE_READY_MESSAGE = { type: "keyway-service-ready" } as const;

export function isServiceReadyMessage(message: unknown): boolean {
  return (
    typeof message === "object" &&
    message !== null &&
    "type" in message &&
    message.type === SERVICE_READY_MESSAGE.type
  );
}

/**
 * The process side of a service entry (`control-plane-api`, `data-plane-gateway`): starts it, and
 * stops it on SIGINT or SIGTERM, or when the parent holding its IPC channel goes away (a
 * supervisor killed outright must not leave its services behind). A failure to start or stop is
 * one line on stderr and exit code 1: a port in use or a configuration problem as its message,
 * anything else (a bug) with its stack. Ctrl+C reaches every process in the terminal's group and
 * `pnpm start` then sends SIGTERM too: the first signal stops the service, later ones are ignored.
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
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    try {
      await running.close();
      process.exit(0);
    } catch (error) {
      fail("error while stopping", error);
    }
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, stop);
  if (process.send !== undefined) {
    process.once("disconnect", stop);
    process.send(SERVICE_READY_MESSAGE);
  }
}

function describeFailure(error: unknown): string {
  if (error instanceof ConfigError || error instanceof PortInUseError) return error.message;
  if (error instanceof Error) return error.stack ?? error.message;
  return String(error);
}
