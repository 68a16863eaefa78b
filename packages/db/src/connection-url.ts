import postgres from "postgres";

/** Where and as whom to reach a PostgreSQL server. */
export interface PostgresServerAddress {
  /** TCP host. */
  host: string;
  /** TCP port; also names the Unix-domain socket in `socketDir` (`.s.PGSQL.<port>`). */
  port: number;
  user: string;
  password: string;
  /** Directory of the server's Unix-domain socket: when set, URLs reach the server through it. */
  socketDir?: string;
}

/**
 * URL of `database` on `server`: through its Unix-domain socket when it has one (`socketDir`),
 * in libpq's form — the socket's directory as the `host` query parameter, which overrides the
 * authority's host (`postgres://user:pass@127.0.0.1:5432/db?host=%2Ftmp%2Fdir`); else over TCP.
 * libpq (psql), node-postgres and `postgresClient` below all read that form; a tool that ignores
 * `host` still reaches the same server over TCP.
 */
export function postgresUrl(server: PostgresServerAddress, database: string): string {
  const tcp = postgresTcpUrl(server, database);
  return server.socketDir === undefined
    ? tcp
    : `${tcp}?host=${encodeURIComponent(server.socketDir)}`;
}

/** URL of `database` on `server` over TCP, even when it has a socket (e.g. to put a proxy between). */
export function postgresTcpUrl(server: PostgresServerAddress, database: string): string {
  const credentials = `${encodeURIComponent(server.user)}:${encodeURIComponent(server.password)}`;
  const host = server.host.includes(":") ? `[${server.host}]` : server.host;
  return `postgres://${credentials}@${host}:${server.port}/${encodeURIComponent(database)}`;
}

/**
 * A postgres.js client on `url`, which may name a Unix-domain socket as libpq does: a `host`
 * query parameter (`?host=/run/postgresql`, or `postgres://user:pass@/db?host=…` with no host
 * before the path). Every Keyway connection is opened here.
 *
 * Why: postgres.js reads a socket directory only from its `host` option (a host starting with
 * `/`); it sends a `host` query parameter to the server as a setting, which the server refuses
 * ("unrecognized configuration parameter"). The parameter becomes the option here; a URL without
 * it is passed on untouched.
 */
export function postgresClient(
  url: string,
  options: postgres.Options<Record<string, never>> = {},
): postgres.Sql {
  const { url: rest, host } = splitHostParameter(url);
  return postgres(rest, host === undefined ? options : { ...options, host });
}

/** `url` without its `host` query parameter, and that parameter's value (if not empty). */
export function splitHostParameter(url: string): { url: string; host: string | undefined } {
  const query = url.indexOf("?");
  if (query < 0 || !/[?&]host=/.test(url.slice(query))) return { url, host: undefined };
  const parsed = parseUrl(url);
  const host = parsed.searchParams.get("host") || undefined;
  parsed.searchParams.delete("host");
  // libpq's `postgres://user@/db?host=…` (see parseUrl), and `postgres:///db?host=…`: postgres.js
  // needs a host there, which the `host` option then overrides.
  if (parsed.hostname === "") parsed.hostname = "localhost";
  return { url: parsed.href, host };
}

function parseUrl(url: string): URL {
  try {
    return new URL(url);
  } catch {
    // The WHATWG parser refuses credentials without a host (`user:pass@/db`); libpq allows them.
    try {
      return new URL(url.replace("@/", "@localhost/"));
    } catch {
      // Not the parser's error: it carries the input, credentials included.
      throw new Error("the database URL is not a valid postgres:// URL");
    }
  }
}
