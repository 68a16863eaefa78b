import { isIPv4, isIPv6 } from "node:net";

/**
 * Which destination addresses unmanaged egress may reach (SPEC §7 SSRF rules). Classifies an IP
 * literal by the special-purpose registries (RFC 6890 and successors). IPv6 forms that embed an
 * IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`,
 * 6to4 `2002::/16`) are judged by the IPv4 address they reach.
 */
export type AddressClass =
  | "public"
  | "unspecified"
  | "loopback"
  | "link_local"
  | "private"
  | "shared"
  | "multicast"
  | "reserved"
  | "invalid";

interface Range {
  readonly bytes: readonly number[];
  readonly prefix: number;
  readonly class: Exclude<AddressClass, "public" | "invalid">;
}

function v4(cidr: string, kind: Range["class"]): Range {
  const [address = "", prefix = "32"] = cidr.split("/");
  return { bytes: address.split(".").map(Number), prefix: Number(prefix), class: kind };
}

function v6(cidr: string, kind: Range["class"]): Range {
  const [address = "", prefix = "128"] = cidr.split("/");
  const bytes = parseIPv6(address);
  if (bytes === null) throw new TypeError(`bad range ${cidr}`);
  return { bytes: [...bytes], prefix: Number(prefix), class: kind };
}

const IPV4_RANGES: readonly Range[] = [
  v4("0.0.0.0/8", "unspecified"),
  v4("10.0.0.0/8", "private"),
  v4("100.64.0.0/10", "shared"),
  v4("127.0.0.0/8", "loopback"),
  v4("169.254.0.0/16", "link_local"),
  v4("172.16.0.0/12", "private"),
  v4("192.0.0.0/24", "reserved"),
  v4("192.0.2.0/24", "reserved"),
  v4("192.88.99.0/24", "reserved"),
  v4("192.168.0.0/16", "private"),
  v4("198.18.0.0/15", "reserved"),
  v4("198.51.100.0/24", "reserved"),
  v4("203.0.113.0/24", "reserved"),
  v4("224.0.0.0/4", "multicast"),
  v4("240.0.0.0/4", "reserved"),
];

const IPV6_RANGES: readonly Range[] = [
  v6("::/128", "unspecified"),
  v6("::1/128", "loopback"),
  v6("100::/64", "reserved"),
  v6("2001:db8::/32", "reserved"),
  v6("2001::/23", "reserved"),
  v6("fc00::/7", "private"),
  v6("fe80::/10", "link_local"),
  v6("fec0::/10", "private"),
  v6("ff00::/8", "multicast"),
];

function inRange(bytes: Uint8Array, range: Range): boolean {
  let bits = range.prefix;
  for (let i = 0; bits > 0; i++) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((bytes[i] ?? 0) & mask) !== ((range.bytes[i] ?? 0) & mask)) return false;
    bits -= 8;
  }
  return true;
}

function classifyIPv4Bytes(bytes: Uint8Array): AddressClass {
  for (const range of IPV4_RANGES) if (inRange(bytes, range)) return range.class;
  return "public";
}

/** The class of an IPv4 or IPv6 literal (`invalid` for anything else). */
export function classifyAddress(address: string): AddressClass {
  if (isIPv4(address)) return classifyIPv4Bytes(Uint8Array.from(address.split(".").map(Number)));
  const bytes = isIPv6(address) ? parseIPv6(address) : null;
  if (bytes === null) return "invalid";
  const embedded = embeddedIPv4(bytes);
  if (embedded !== null) return classifyIPv4Bytes(embedded);
  for (const range of IPV6_RANGES) if (inRange(bytes, range)) return range.class;
  return "public";
}

/** True when unmanaged egress may connect to this address without `allow_private_networks`. */
export function isPublicAddress(address: string): boolean {
  return classifyAddress(address) === "public";
}

/**
 * The first of a host name's addresses that is not public, with its class; undefined when all are.
 * Callers refuse the name as a whole when one answer is not public: which answer a client would
 * use is not theirs to choose.
 */
export function firstNonPublicAddress(
  addresses: readonly { address: string }[],
): { address: string; addressClass: Exclude<AddressClass, "public"> } | undefined {
  for (const { address } of addresses) {
    const addressClass = classifyAddress(address);
    if (addressClass !== "public") return { address, addressClass };
  }
  return undefined;
}

/** The IPv4 address an IPv6 address stands for, when it is one of the embedding forms. */
function embeddedIPv4(bytes: Uint8Array): Uint8Array | null {
  const zeroPrefix = (n: number) => bytes.subarray(0, n).every((b) => b === 0);
  // ::ffff:a.b.c.d (IPv4-mapped)
  if (zeroPrefix(10) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.subarray(12);
  // ::a.b.c.d (deprecated IPv4-compatible), except :: and ::1 themselves
  if (zeroPrefix(12) && !(zeroPrefix(15) && (bytes[15] === 0 || bytes[15] === 1))) {
    return bytes.subarray(12);
  }
  // 64:ff9b::/96 (NAT64 well-known prefix)
  const nat64 = [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0];
  if (nat64.every((b, i) => bytes[i] === b)) return bytes.subarray(12);
  // 2002:AABB:CCDD::/48 (6to4)
  if (bytes[0] === 0x20 && bytes[1] === 0x02) return bytes.subarray(2, 6);
  return null;
}

/** Sixteen bytes of an IPv6 literal (zone id dropped), or null when it is not one. */
export function parseIPv6(input: string): Uint8Array | null {
  const address = input.split("%", 1)[0] ?? "";
  const halves = address.split("::");
  if (halves.length > 2) return null;
  const groups = (part: string | undefined): number[] | null => {
    if (part === undefined || part === "") return [];
    const out: number[] = [];
    const pieces = part.split(":");
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (i === pieces.length - 1 && piece.includes(".")) {
        if (!isIPv4(piece)) return null;
        const [a = 0, b = 0, c = 0, d = 0] = piece.split(".").map(Number);
        out.push((a << 8) | b, (c << 8) | d);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(piece)) {
        out.push(Number.parseInt(piece, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const all = [...head, ...new Array<number>(halves.length === 1 ? 0 : missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[i * 2] = group >> 8;
    bytes[i * 2 + 1] = group & 0xff;
  });
  return bytes;
}
