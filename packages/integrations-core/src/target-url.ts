import { normalizeHost } from "./routes/route-matcher";

/**
 * Splits an operator-configured base URL (e.g. `https://api.openai.com/v1`) into the pieces a
 * route needs: the upstream origin, the route host (`host[:port]`, lower case, default ports
 * 80/443 removed, as SPEC §4.3 compares hosts) and the path prefix (no trailing slash).
 */
export interface BaseUrlParts {
  origin: string;
  host: string;
  pathPrefix: string;
}

export function splitBaseUrl(baseUrl: string): BaseUrlParts {
  const url = new URL(baseUrl);
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new TypeError(`base URL must be http(s): ${baseUrl}`);
  }
  // The one host normalisation the matcher uses, so a route host always equals what requests
  // normalise to.
  const host = normalizeHost(url.host);
  if (host === null) throw new TypeError(`base URL has an invalid host: ${baseUrl}`);
  const trimmed = url.pathname.replace(/\/+$/, "");
  return { origin: url.origin, host, pathPrefix: trimmed === "" ? "/" : trimmed };
}

/** Joins a base URL and a path without doubling or dropping slashes. */
export function joinUrl(baseUrl: string, path: string): string {
  return `${baseUrl.replace(/\/+$/, "")}/${path.replace(/^\/+/, "")}`;
}
