import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { type AddressClass, firstNonPublicAddress } from "@keyway/integrations-core";

/**
 * Where a webhook subscriber URL may point (SPEC §8: "subscriber URLs are checked against the
 * same private-address rules as egress"). The host is resolved once and every answer judged by
 * `firstNonPublicAddress` (`classifyAddress`), the rules the gateway applies to unmanaged egress: loopback, link-local
 * (cloud metadata), private, shared and reserved addresses are refused unless the operator allows
 * private subscribers (`webhooks.allow_private_subscribers`, for on-premises use).
 *
 * The API checks when a URL is written; the worker checks again at every send and connects to
 * the address it checked (no second DNS answer can swap in another: DNS-rebinding safe).
 */

export interface SubscriberAddress {
  address: string;
  family: 4 | 6;
}

export type ResolveHost = (hostname: string) => Promise<readonly SubscriberAddress[]>;

export const resolveWithSystemDns: ResolveHost = async (hostname) => {
  const answers = await lookup(hostname, { all: true, verbatim: true });
  return answers.map(({ address, family }) => ({ address, family: family === 6 ? 6 : 4 }));
};

export class SubscriberAddressError extends Error {
  override readonly name = "SubscriberAddressError";
  constructor(
    readonly reason: "unresolvable" | "private",
    message: string,
    readonly addressClass?: AddressClass,
  ) {
    super(message);
  }
}

export interface SubscriberAddressOptions {
  allowPrivate: boolean;
  resolveHost?: ResolveHost;
}

/** The host name or IP literal of an http(s) URL, without IPv6 brackets. */
export function subscriberHostname(url: URL): string {
  const host = url.hostname;
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/**
 * Resolves the URL's host and checks every address; returns them all (at least one), the
 * addresses a sender may connect to. Throws a `SubscriberAddressError` when the host does not
 * resolve or an answer is not public (and private subscribers are not allowed). A name resolving
 * to a public and a private address is refused.
 */
export async function resolveSubscriberAddresses(
  url: URL,
  options: SubscriberAddressOptions,
): Promise<readonly [SubscriberAddress, ...SubscriberAddress[]]> {
  const hostname = subscriberHostname(url);
  const family = isIP(hostname);
  let addresses: readonly SubscriberAddress[];
  if (family !== 0) {
    addresses = [{ address: hostname, family: family === 6 ? 6 : 4 }];
  } else {
    try {
      addresses = await (options.resolveHost ?? resolveWithSystemDns)(hostname);
    } catch {
      addresses = [];
    }
  }
  const [first, ...rest] = addresses;
  if (first === undefined) {
    throw new SubscriberAddressError("unresolvable", `the host ${hostname} does not resolve`);
  }
  const refused = options.allowPrivate ? undefined : firstNonPublicAddress(addresses);
  if (refused !== undefined) {
    throw new SubscriberAddressError(
      "private",
      `the host ${hostname} resolves to a ${refused.addressClass.replace("_", "-")} address; subscribers must be reachable on public addresses`,
      refused.addressClass,
    );
  }
  return [first, ...rest];
}
