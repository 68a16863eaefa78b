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

export interface HostPort {
  /**
   * Host name or IP literal without brackets, case kept, without a trailing dot: `api.x.com.` and
   * `127.0.0.1.` name what `api.x.com` and `127.0.0.1` name, as `normalizeHost` reads them too, so
   * the leaf certificate, the egress check and DNS all see the host the matcher saw.
   */
  hostname: string;
  port: number;
}

/**
 * `host`, `host:port` or `[v6]:port`; null when the port is missing-but-required or invalid, or the
 * host is empty once its trailing dot is dropped.
 */
export function parseAuthority(authority: string, defaultPort: number | null): HostPort | null {
  let hostname: string;
  let portText: string | undefined;
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]");
    if (close < 0) return null;
    hostname = authority.slice(1, close);
    const rest = authority.slice(close + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) return null;
      portText = rest.slice(1);
    }
  } else {
    const colon = authority.lastIndexOf(":");
    if (colon >= 0 && authority.indexOf(":") !== colon) return null;
    hostname = colon < 0 ? authority : authority.slice(0, colon);
    portText = colon < 0 ? undefined : authority.slice(colon + 1);
    if (hostname.endsWith(".")) hostname = hostname.slice(0, -1);
  }
  if (hostname === "") return null;
  if (portText === undefined) {
    return defaultPort === null ? null : { hostname, port: defaultPort };
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port < 1 || port > 65535) return null;
  return { hostname, port };
}
