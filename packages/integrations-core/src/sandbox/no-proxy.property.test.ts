import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LOOPBACK_NO_PROXY, sandboxNoProxy } from "./no-proxy";

/** Host names as plans hold them, biased towards loopback names and their look-alikes. */
const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/);
const hostName = fc.oneof(
  fc.constantFrom("localhost", "127.0.0.1", "api.localhost", "mylocalhost", "10.127.0.0.1"),
  fc
    .tuple(label, fc.constantFrom("localhost", "127.0.0.1", "example.com"))
    .map(([l, d]) => `${l}.${d}`),
  fc.array(label, { minLength: 1, maxLength: 3 }).map((labels) => labels.join(".")),
);
const routeHost = fc
  .tuple(
    hostName,
    fc.option(fc.integer({ min: 1, max: 65535 }).filter((p) => p !== 80 && p !== 443)),
  )
  .map(([name, port]) => (port === null ? name : `${name}:${port}`));
const plan = fc.array(
  fc.record({ match: fc.record({ hosts: fc.array(routeHost, { minLength: 1, maxLength: 3 }) }) }),
  {
    maxLength: 6,
  },
);

/** Does `entry` cover `host` under any tool's reading: exact, parent domain, or plain suffix? */
function covers(entry: string, host: string): boolean {
  const name = host.replace(/:[0-9]+$/, "");
  return name === entry || name.endsWith(`.${entry}`) || name.endsWith(entry);
}

describe("sandboxNoProxy", () => {
  it("never names a host a route of the plan names, under any tool's matching", () => {
    fc.assert(
      fc.property(plan, (routes) => {
        const entries = sandboxNoProxy(routes);
        for (const entry of entries) {
          for (const route of routes) {
            for (const host of route.match.hosts) expect(covers(entry, host)).toBe(false);
          }
        }
      }),
    );
  });

  it("keeps every loopback entry no route host could be read as", () => {
    fc.assert(
      fc.property(plan, (routes) => {
        const kept = new Set(sandboxNoProxy(routes));
        for (const entry of LOOPBACK_NO_PROXY) {
          const clashes = routes.some((r) => r.match.hosts.some((h) => covers(entry, h)));
          expect(kept.has(entry)).toBe(!clashes);
        }
      }),
    );
  });

  it("drops 127.0.0.1 for a route on 127.0.0.1:PORT and localhost for one on api.localhost", () => {
    expect(sandboxNoProxy([{ match: { hosts: ["127.0.0.1:4100"] } }])).toEqual([
      "localhost",
      "::1",
    ]);
    expect(sandboxNoProxy([{ match: { hosts: ["api.localhost"] } }])).toEqual(["127.0.0.1", "::1"]);
    expect(sandboxNoProxy([{ match: { hosts: ["api.github.com"] } }])).toEqual([
      ...LOOPBACK_NO_PROXY,
    ]);
  });
});
