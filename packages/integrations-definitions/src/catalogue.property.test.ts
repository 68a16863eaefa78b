import { compilePlan } from "@keyway/integrations-core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createCatalogueRegistry } from "./index";
import { catalogueProfile } from "./testing/catalogue-profile";

const registry = createCatalogueRegistry();

describe("catalogue compile determinism", () => {
  it("gives a byte-identical plan and digest for any order and any subset of the bindings", () => {
    const profile = catalogueProfile();
    fc.assert(
      fc.property(
        fc.subarray(profile.bindings, { minLength: 1 }),
        fc.infiniteStream(fc.nat()).map((s) => [...s.take(32)]),
        (bindings, keys) => {
          const order = bindings
            .map((b, i) => ({ b, k: keys[i] ?? 0 }))
            .sort((x, y) => x.k - y.k)
            .map((x) => x.b);
          const a = compilePlan({ profileVersionId: "pver", registry, ...profile, bindings });
          const b = compilePlan({
            profileVersionId: "pver",
            registry,
            targets: [...profile.targets].reverse(),
            connections: [...profile.connections].reverse(),
            bindings: order,
          });
          if (!a.ok) throw new Error(JSON.stringify(a.errors));
          expect(b.ok).toBe(true);
          if (b.ok) {
            expect(JSON.stringify(b.plan)).toBe(JSON.stringify(a.plan));
            expect(b.digest).toBe(a.digest);
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});
