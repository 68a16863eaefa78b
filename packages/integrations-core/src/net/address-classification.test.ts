import { describe, expect, it } from "vitest";
import {
  type AddressClass,
  classifyAddress,
  firstNonPublicAddress,
  parseIPv6,
} from "./address-classification";

describe("classifyAddress", () => {
  const table: [string, AddressClass][] = [
    ["93.184.216.34", "public"],
    ["8.8.8.8", "public"],
    ["0.0.0.0", "unspecified"],
    ["0.1.2.3", "unspecified"],
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["10.0.0.1", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["172.32.0.1", "public"],
    ["192.168.1.1", "private"],
    ["100.64.0.1", "shared"],
    ["100.127.255.255", "shared"],
    ["100.128.0.1", "public"],
    ["169.254.169.254", "link_local"],
    ["192.0.2.1", "reserved"],
    ["198.18.0.1", "reserved"],
    ["224.0.0.1", "multicast"],
    ["255.255.255.255", "reserved"],
    ["2606:4700::1111", "public"],
    ["::", "unspecified"],
    ["::1", "loopback"],
    ["0:0:0:0:0:0:0:1", "loopback"],
    ["fc00::1", "private"],
    ["fd12:3456::1", "private"],
    ["fe80::1", "link_local"],
    ["fe80::1%eth0", "link_local"],
    ["ff02::1", "multicast"],
    ["2001:db8::1", "reserved"],
    // IPv6 forms that reach an IPv4 address are judged by that address.
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:7f00:1", "loopback"],
    ["::FFFF:169.254.169.254", "link_local"],
    ["::ffff:10.0.0.1", "private"],
    ["::ffff:8.8.8.8", "public"],
    ["::127.0.0.1", "loopback"],
    ["64:ff9b::a9fe:a9fe", "link_local"],
    ["64:ff9b::808:808", "public"],
    ["2002:c0a8:0101::1", "private"],
    ["not-an-ip", "invalid"],
    ["1.2.3", "invalid"],
  ];
  it.each(table)("%s is %s", (address, expected) => {
    expect(classifyAddress(address)).toBe(expected);
  });
});

describe("parseIPv6", () => {
  it("expands :: and embedded IPv4", () => {
    expect([...(parseIPv6("::ffff:1.2.3.4") ?? [])]).toEqual([
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4,
    ]);
    expect(parseIPv6("1:2:3:4:5:6:7:8")?.[15]).toBe(8);
  });

  it("refuses malformed literals", () => {
    for (const bad of ["1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "::g", "1:2:3:4:5:6:7"]) {
      expect(parseIPv6(bad), bad).toBeNull();
    }
  });
});

describe("firstNonPublicAddress", () => {
  it("names the first answer that is not public, whatever comes before it", () => {
    expect(firstNonPublicAddress([{ address: "93.184.215.14" }])).toBeUndefined();
    expect(firstNonPublicAddress([])).toBeUndefined();
    expect(
      firstNonPublicAddress([
        { address: "93.184.215.14" },
        { address: "::ffff:10.0.0.1" },
        { address: "127.0.0.1" },
      ]),
    ).toEqual({ address: "::ffff:10.0.0.1", addressClass: "private" });
  });
});
