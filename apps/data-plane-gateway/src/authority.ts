import { normalizeHost } from "@keyway/integrations-core";

/**
 * Request-target parsing the proxy needs before the route matcher sees a request: the authority
 * and path of an absolute-form target (`GET http://host:port/path?q`), and the host and port of an
 * authority (`CONNECT host:port`). Validation of the host itself is `normalizeHost`'s job.
 */

/**
 * A fragment is never part of a request-target (RFC 9112 §3.2): a client strips it. One that
 * arrives anyway would be cut off by the matcher (`/v1#/../admin` matches as `/v1`) but travel on
 * to the upstream, so the gateway refuses the whole request instead of guessing which part counts.
 */
export function hasFragment(target: string): boolean {
  return target.includes("#");
}

export interface AbsoluteTarget {
  /** `host[:port]` as sent. */
  authority: string;
  /** Path and query exactly as sent (`/` when the target has none). */
  rawPath: string;
}

const HTTP_SCHEME = "http://";

/** Splits an `http://` absolute-form target; null for anything else (origin-form, https, …). */
export function splitAbsoluteForm(target: string): AbsoluteTarget | null {
  if (target.length <= HTTP_SCHEME.length) return null;
  if (target.slice(0, HTTP_SCHEME.length).toLowerCase() !== HTTP_SCHEME) return null;
  const start = HTTP_SCHEME.length;
  let end = start;
  while (end < target.length) {
    const c = target.charCodeAt(end);
    if (c === 0x2f || c === 0x3f || c === 0x23) break; // / ? #
    end++;
  }
  if (end === start) return null;
  const rest = target.slice(end);
  return {
    authority: target.slice(start, end),
    rawPath: rest === "" ? "/" : rest.charCodeAt(0) === 0x2f ? rest : `/${rest}`,
  };
}

export interface ParsedAuthority {
  /** Normalized `host[:port]` (`normalizeHost`): what the route matcher and egress policy compare. */
  host: string;
  /**
   * `host` without port or brackets: the name or address the leaf certificate is issued for, DNS
   * resolves and the egress check classifies. Derived from `host`, so it is lower-case and has no
   * trailing dot (`api.x.com.` and `127.0.0.1.` name `api.x.com` and `127.0.0.1`), exactly as the
   * matcher read it.
   */
  hostname: string;
  port: number;
}

/**
 * `host`, `host:port` or `[v6]:port`, the one parse of a `CONNECT` or absolute-form authority:
 * the host is `normalizeHost`'s reading, the port the one given (else `defaultPort`). Null when
 * `normalizeHost` refuses the host or a required port is missing.
 */
export function parseAuthority(
  authority: string,
  defaultPort: number | null,
): ParsedAuthority | null {
  const host = normalizeHost(authority);
  if (host === null) return null;
  // `normalizeHost` checked the shape: a port, if any, follows the last colon after any `]`.
  const colon = authority.lastIndexOf(":");
  const hasPort = colon > authority.lastIndexOf("]");
  const port = hasPort ? Number(authority.slice(colon + 1)) : defaultPort;
  if (port === null) return null;
  // The normalized host keeps its port only when it is not a default one.
  const hostColon = host.lastIndexOf(":");
  const bare = hostColon > host.lastIndexOf("]") ? host.slice(0, hostColon) : host;
  const hostname = bare.startsWith("[") ? bare.slice(1, -1) : bare;
  return { host, hostname, port };
}
