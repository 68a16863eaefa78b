import type { EgressRoute } from "@keyway/integrations-core";
import { SecretScrubber } from "../scrub/secret-scrubber";

/**
 * Stage 5 — inject: the request the upstream receives (SPEC §7 "Matched request"). Removes
 * hop-by-hop and proxy headers (and those the client's `Connection` header names), `Host`, any
 * client-sent `Authorization` and any client-sent copy of the header or query parameter the
 * route injects (placeholders never reach the upstream), then adds the credential per
 * `route.auth`. Headers stay flat `[name, value, …]` arrays, as Node receives and undici sends them.
 *
 * Where a credential is injected, the response will be scrubbed of it (SPEC §7): the request
 * carries the scrubber for the forms this stage sent it in, and asks for an uncompressed answer
 * (`accept-encoding: identity`), since a secret inside compressed bytes could not be found.
 */

export interface UpstreamRequest {
  /** The route's upstream origin (`scheme://host[:port]`): never a host from the request. */
  origin: string;
  /** Path and query for the upstream: the client's bytes, except an injected query parameter. */
  path: string;
  /** Flat `[name, value, …]` list, `host` first. */
  headers: string[];
  /** Masks the injected credential in the response; null when none was injected. */
  scrubber: SecretScrubber | null;
}

export type InjectCredential = (
  rawHeaders: readonly string[],
  rawPath: string,
  route: EgressRoute,
  credential: string | null,
) => UpstreamRequest;

/** Never forwarded, in either direction (RFC 9110 §7.6.1, plus `proxy-*` and `expect`). */
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "expect",
  "host",
]);

function isHopByHop(lowerName: string): boolean {
  return HOP_BY_HOP.has(lowerName) || lowerName.startsWith("proxy-");
}

/** Header names listed in `Connection` values (each also hop-by-hop), lower-cased. */
function connectionNominated(rawHeaders: readonly string[]): Set<string> | null {
  let named: Set<string> | null = null;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length !== 10 || name.toLowerCase() !== "connection") continue;
    for (const token of rawHeaders[i + 1]!.split(",")) {
      const lower = token.trim().toLowerCase();
      if (lower === "") continue;
      named ??= new Set();
      named.add(lower);
    }
  }
  return named;
}

/**
 * Copies `rawHeaders` without hop-by-hop headers and without `extraRemoved` (lower-case), after
 * `[host, hostValue]`. Also used for unmanaged plain-HTTP requests, which keep their own auth.
 */
export function stripHopByHop(
  rawHeaders: readonly string[],
  hostValue: string,
  extraRemoved?: ReadonlySet<string>,
): string[] {
  const nominated = connectionNominated(rawHeaders);
  const out = ["host", hostValue];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (isHopByHop(lower)) continue;
    if (extraRemoved?.has(lower) || nominated?.has(lower)) continue;
    out.push(name, rawHeaders[i + 1]!);
  }
  return out;
}

/** What injecting a route's credential needs, derived once per route. */
interface RouteInjection {
  readonly origin: string;
  readonly host: string;
  /** Client headers removed besides hop-by-hop ones. */
  readonly removed: ReadonlySet<string>;
  /** The header set, and the text before the secret in its value; null for query or none. */
  readonly header: { readonly name: string; readonly prefix: string } | null;
  /** The query parameter set (raw name, and encoded for writing); null unless query auth. */
  readonly query: { readonly name: string; readonly encodedName: string } | null;
  /** The last credential seen and what is made from it (credentials change rarely). */
  memo: CredentialForms | null;
}

/** What one credential value becomes on a route: built once per value, not per request. */
interface CredentialForms {
  readonly credential: string;
  /** The injected header's value; null for query auth. */
  readonly headerValue: string | null;
  readonly scrubber: SecretScrubber;
}

function credentialForms(
  injection: RouteInjection,
  route: EgressRoute,
  credential: string,
): CredentialForms {
  if (injection.memo?.credential === credential) return injection.memo;
  const sent =
    route.auth.type === "basic"
      ? Buffer.from(`${route.auth.username}:${credential}`).toString("base64")
      : route.auth.type === "query"
        ? encodeURIComponent(credential)
        : credential;
  // The scrubber looks for the value as sent, the value itself (an upstream that decodes and
  // echoes it), and the value as a JSON string quotes it (`"` and `\` escaped), which is how
  // echoing services hand requests back.
  const forms = [credential, sent, JSON.stringify(credential).slice(1, -1)];
  injection.memo = {
    credential,
    headerValue: injection.header === null ? null : injection.header.prefix + sent,
    scrubber: new SecretScrubber(forms),
  };
  return injection.memo;
}

function routeInjection(route: EgressRoute): RouteInjection {
  const upstream = new URL(route.upstream.baseUrl);
  const auth = route.auth;
  const removed = new Set(["authorization"]);
  // Replaced by `identity` where the response will be scrubbed.
  if (auth.type !== "none") removed.add("accept-encoding");
  const base = {
    origin: upstream.origin,
    host: upstream.host,
    removed,
    header: null,
    query: null,
    memo: null,
  };
  switch (auth.type) {
    case "bearer":
      return { ...base, header: { name: "authorization", prefix: `${auth.scheme} ` } };
    case "basic":
      return { ...base, header: { name: "authorization", prefix: "Basic " } };
    case "header":
      removed.add(auth.name);
      return {
        ...base,
        header: { name: auth.name, prefix: auth.scheme === undefined ? "" : `${auth.scheme} ` },
      };
    case "query":
      return { ...base, query: { name: auth.name, encodedName: encodeURIComponent(auth.name) } };
    case "none":
      return base;
  }
}

/** Removes every `name=` parameter (compared decoded) from the query and appends `name=value`. */
export function replaceQueryParameter(
  rawPath: string,
  name: string,
  encodedName: string,
  value: string,
): string {
  const question = rawPath.indexOf("?");
  const path = question < 0 ? rawPath : rawPath.slice(0, question);
  const kept: string[] = [];
  if (question >= 0) {
    for (const pair of rawPath.slice(question + 1).split("&")) {
      if (pair === "") continue;
      const equals = pair.indexOf("=");
      if (decodeQueryComponent(equals < 0 ? pair : pair.slice(0, equals)) === name) continue;
      kept.push(pair);
    }
  }
  kept.push(`${encodedName}=${encodeURIComponent(value)}`);
  return `${path}?${kept.join("&")}`;
}

function decodeQueryComponent(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, " "));
  } catch {
    return text;
  }
}

export function createInject(): InjectCredential {
  /**
   * Derived once per `route.auth` and `route.upstream` objects (what an injection depends on),
   * which live with their cached plans and are shared by the plans of one shape: thousands of
   * plans alike derive it once.
   */
  const injections = new WeakMap<
    EgressRoute["auth"],
    WeakMap<EgressRoute["upstream"], RouteInjection>
  >();

  function injectionFor(route: EgressRoute): RouteInjection {
    let byUpstream = injections.get(route.auth);
    if (byUpstream === undefined) {
      byUpstream = new WeakMap();
      injections.set(route.auth, byUpstream);
    }
    let injection = byUpstream.get(route.upstream);
    if (injection === undefined) {
      injection = routeInjection(route);
      byUpstream.set(route.upstream, injection);
    }
    return injection;
  }

  return function injectCredential(rawHeaders, rawPath, route, credential) {
    const injection = injectionFor(route);
    const headers = stripHopByHop(rawHeaders, injection.host, injection.removed);
    if (credential === null || route.auth.type === "none") {
      return { origin: injection.origin, path: rawPath, headers, scrubber: null };
    }
    const forms = credentialForms(injection, route, credential);
    let path = rawPath;
    if (forms.headerValue !== null && injection.header !== null) {
      headers.push(injection.header.name, forms.headerValue);
    } else if (injection.query !== null) {
      const { name, encodedName } = injection.query;
      path = replaceQueryParameter(rawPath, name, encodedName, credential);
    }
    headers.push("accept-encoding", "identity");
    return { origin: injection.origin, path, headers, scrubber: forms.scrubber };
  };
}
