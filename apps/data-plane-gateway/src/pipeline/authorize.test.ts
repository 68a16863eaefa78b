import type { EgressPolicy } from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import { testPlan } from "../testing/fixtures";
import {
  compileHostPatterns,
  createAuthorize,
  type EgressSettings,
  type ResolveHost,
} from "./authorize";

const plan = (egressPolicy?: EgressPolicy) => testPlan([], egressPolicy);

const dns: Record<string, string[]> = {
  "public.test": ["93.184.216.34"],
  "loop.test": ["127.0.0.1"],
  "meta.test": ["169.254.169.254"],
  "split.test": ["93.184.216.34", "192.168.0.10"],
  "v6.test": ["2606:4700::1111"],
  "mapped.test": ["::ffff:10.0.0.1"],
};
const resolveHost: ResolveHost = async (hostname) => {
  const answers = dns[hostname];
  if (answers === undefined) throw new Error("ENOTFOUND");
  return answers.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
};

function target(host: string, port = 443) {
  return { host: port === 443 || port === 80 ? host : `${host}:${port}`, hostname: host, port };
}

function authorizer(egress: Partial<EgressSettings>) {
  return createAuthorize({
    egress: { defaultPolicy: "deny", allowHosts: [], allowPrivateNetworks: false, ...egress },
    resolveHost,
  });
}

describe("authorizeEgress", () => {
  it("denies under a deny policy unless the deployment allow-list names the host", async () => {
    const authorize = authorizer({ allowHosts: ["public.test", "*.example.test"] });
    await expect(authorize(plan(), target("public.test"))).resolves.toEqual({
      address: "93.184.216.34",
      family: 4,
      port: 443,
    });
    await expect(authorize(plan(), target("v6.test"))).rejects.toMatchObject({
      code: "policy_denied",
      status: 403,
    });
  });

  it("uses the plan's own policy instead of the deployment's when it has one", async () => {
    const authorize = authorizer({ defaultPolicy: "allow" });
    const listed = plan({ default: "deny", allowHosts: ["public.test:8443"] });
    await expect(authorize(listed, target("public.test", 8443))).resolves.toMatchObject({
      port: 8443,
    });
    await expect(authorize(listed, target("public.test"))).rejects.toMatchObject({
      code: "policy_denied",
    });
    await expect(
      authorize(plan({ default: "allow", allowHosts: [] }), target("v6.test")),
    ).resolves.toMatchObject({
      address: "2606:4700::1111",
      family: 6,
    });
  });

  it("refuses private, loopback and link-local answers, and names resolving to any of them", async () => {
    const authorize = authorizer({ defaultPolicy: "allow" });
    for (const host of [
      "loop.test",
      "meta.test",
      "split.test",
      "mapped.test",
      "127.0.0.1",
      "::1",
      "10.2.3.4",
    ]) {
      await expect(authorize(plan(), target(host)), host).rejects.toMatchObject({
        code: "private_address_denied",
        status: 403,
      });
    }
  });

  it("allows private destinations when configured, still connecting to the resolved address", async () => {
    const authorize = authorizer({ defaultPolicy: "allow", allowPrivateNetworks: true });
    await expect(authorize(plan(), target("loop.test", 8080))).resolves.toEqual({
      address: "127.0.0.1",
      family: 4,
      port: 8080,
    });
  });

  it("answers 502 for a name that does not resolve", async () => {
    const authorize = authorizer({ defaultPolicy: "allow" });
    await expect(authorize(plan(), target("nowhere.test"))).rejects.toMatchObject({
      code: "upstream_unreachable",
    });
  });
});

describe("compileHostPatterns", () => {
  it("matches exact names and subdomains of wildcards, not the apex", () => {
    const patterns = compileHostPatterns(["a.test", "*.b.test"]);
    expect(patterns.matches("a.test")).toBe(true);
    expect(patterns.matches("x.a.test")).toBe(false);
    expect(patterns.matches("x.b.test")).toBe(true);
    expect(patterns.matches("y.x.b.test")).toBe(true);
    expect(patterns.matches("b.test")).toBe(false);
    expect(patterns.matches("xb.test")).toBe(false);
  });
});
