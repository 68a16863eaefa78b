import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createRegistry } from "../registry";
import {
  jsonAgentFixtureDefinition,
  restFixtureDefinition,
  tomlAgentFixtureDefinition,
} from "../testing/fixture-definitions";
import type { BindingInput, ConnectionInput, TargetInput } from "./check-binding";
import { compilePlan } from "./compile-plan";

const registry = createRegistry([
  restFixtureDefinition,
  tomlAgentFixtureDefinition,
  jsonAgentFixtureDefinition,
]);

/** A valid profile: each REST binding on its own host, optional agents, MCP servers and env. */
const profileArbitrary = fc
  .record({
    restCount: fc.integer({ min: 1, max: 12 }),
    withTomlAgent: fc.boolean(),
    withJsonAgent: fc.boolean(),
    mcpEvery: fc.integer({ min: 1, max: 4 }),
    // Ids include non-ASCII and mixed case so locale-sensitive ordering would show.
    idSuffixes: fc.uniqueArray(
      fc.constantFrom("a", "B", "é", "Z", "ä", "0", "_", "ß", "x", "Y", "中", "😀"),
      {
        minLength: 12,
        maxLength: 12,
      },
    ),
  })
  .map(({ restCount, withTomlAgent, withJsonAgent, mcpEvery, idSuffixes }) => {
    const targets: TargetInput[] = [];
    const connections: ConnectionInput[] = [];
    const bindings: BindingInput[] = [];
    for (let i = 0; i < restCount; i++) {
      const s = `${idSuffixes[i]}${i}`;
      targets.push({
        id: `tgt_${s}`,
        targetKey: `rest-${i}`,
        variantId: "rest-fixture",
        enabled: true,
        config: { baseUrl: `https://h${i}.example.com/v${i}` },
      });
      connections.push({
        id: `conn_${s}`,
        targetId: `tgt_${s}`,
        methodId: "api-key",
        status: "active",
        config: {},
      });
      bindings.push({
        id: `bind_${s}`,
        kind: "connector",
        connectionId: `conn_${s}`,
        config: {
          ...(i % mcpEvery === 0 ? { mcpServerName: `srv-${i}` } : {}),
          env: { [`VAR_${i}`]: `value ${i}` },
        },
      });
    }
    for (const [variantId, enabled, config] of [
      ["toml-agent-fixture", withTomlAgent, { model: "m" }],
      ["json-agent-fixture", withJsonAgent, {}],
    ] as const) {
      if (!enabled) continue;
      targets.push({
        id: `tgt_${variantId}`,
        targetKey: variantId,
        variantId,
        enabled: true,
        config: {},
      });
      connections.push({
        id: `conn_${variantId}`,
        targetId: `tgt_${variantId}`,
        methodId: "api-key",
        status: "active",
        config: {},
      });
      bindings.push({
        id: `bind_${variantId}`,
        kind: "agent",
        connectionId: `conn_${variantId}`,
        config,
      });
    }
    return { targets, connections, bindings };
  });

function shuffled<T>(items: readonly T[], keys: readonly number[]): T[] {
  return items
    .map((item, i) => ({ item, key: keys[i % keys.length] ?? 0, i }))
    .sort((a, b) => a.key - b.key || a.i - b.i)
    .map(({ item }) => item);
}

describe("compilePlan determinism", () => {
  it("produces a byte-identical plan and digest for any order of bindings, connections and targets", () => {
    fc.assert(
      fc.property(
        profileArbitrary,
        fc.array(fc.integer(), { minLength: 1, maxLength: 20 }),
        fc.array(fc.integer(), { minLength: 1, maxLength: 20 }),
        fc.array(fc.integer(), { minLength: 1, maxLength: 20 }),
        (profile, k1, k2, k3) => {
          const base = compilePlan({ profileVersionId: "pver", registry, ...profile });
          const other = compilePlan({
            profileVersionId: "pver",
            registry,
            bindings: shuffled(profile.bindings, k1),
            connections: shuffled(profile.connections, k2),
            targets: shuffled(profile.targets, k3),
          });
          if (!base.ok) throw new Error(JSON.stringify(base.errors));
          expect(other.ok).toBe(true);
          if (!other.ok) return;
          expect(JSON.stringify(other.plan)).toBe(JSON.stringify(base.plan));
          expect(other.digest).toBe(base.digest);
        },
      ),
      { numRuns: 150 },
    );
  });
});
