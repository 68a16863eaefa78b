import {
  type AnyIntegrationDefinition,
  type BindingInput,
  type CompileResult,
  type ConnectionInput,
  compiledPlanSchema,
  compilePlan,
  createRegistry,
  type IntegrationRegistry,
  type TargetInput,
  toJsonSchemaForm,
} from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";

/** Inputs for one definition's run of the shared contract suite. */
export interface DefinitionFixture {
  target: { config: unknown; secrets: Record<string, string> };
  connection: {
    methodId: string;
    config?: unknown;
    externalSubjectId?: string;
    /** Secret values the user gave for this connection; the plan must never contain them. */
    secretValues: string[];
  };
  binding: { config: unknown };
  /** A binding config that parses but fails `validateBinding`, with the issues expected. */
  invalidBinding?: { config: unknown; issues: { code: string; field: string }[] };
}

export interface SingleCompileOptions {
  targetEnabled?: boolean;
  connectionStatus?: ConnectionInput["status"];
  bindingKind?: string;
  bindingConfig?: unknown;
  registry?: IntegrationRegistry;
}

export const FIXTURE_IDS = {
  target: "tgt_fixture",
  connection: "conn_fixture",
  binding: "bind_fixture",
  profileVersion: "pver_fixture",
} as const;

export function fixtureInputs(
  definition: AnyIntegrationDefinition,
  fixture: DefinitionFixture,
  options: SingleCompileOptions = {},
  ids: { target: string; connection: string; binding: string } = FIXTURE_IDS,
): { target: TargetInput; connection: ConnectionInput; binding: BindingInput } {
  return {
    target: {
      id: ids.target,
      targetKey: definition.variantId,
      variantId: definition.variantId,
      enabled: options.targetEnabled ?? true,
      config: fixture.target.config,
    },
    connection: {
      id: ids.connection,
      targetId: ids.target,
      methodId: fixture.connection.methodId,
      status: options.connectionStatus ?? "active",
      config: fixture.connection.config ?? {},
      ...(fixture.connection.externalSubjectId !== undefined
        ? { externalSubjectId: fixture.connection.externalSubjectId }
        : {}),
    },
    binding: {
      id: ids.binding,
      kind: options.bindingKind ?? definition.kind,
      connectionId: ids.connection,
      config: options.bindingConfig ?? fixture.binding.config,
    },
  };
}

/** Compiles a profile holding only this definition's fixture binding. */
export function compileSingle(
  definition: AnyIntegrationDefinition,
  fixture: DefinitionFixture,
  options: SingleCompileOptions = {},
): CompileResult {
  const { target, connection, binding } = fixtureInputs(definition, fixture, options);
  return compilePlan({
    profileVersionId: FIXTURE_IDS.profileVersion,
    bindings: [binding],
    connections: [connection],
    targets: [target],
    registry: options.registry ?? createRegistry([definition]),
  });
}

/**
 * The suite every provider definition passes (CONVENTIONS: one shared suite for every
 * implementation of an interface). Provider-specific behaviour is tested beside each definition.
 */
export function describeDefinitionContract(
  definition: AnyIntegrationDefinition,
  fixture: DefinitionFixture,
): void {
  describe(`${definition.variantId} satisfies the definition contract`, () => {
    it("registers into a fresh registry", () => {
      expect(createRegistry([definition]).require(definition.variantId)).toBe(definition);
    });

    it("renders JSON-Schema forms for its target, secret and binding schemas", () => {
      for (const [schema, secret] of [
        [definition.targetConfigSchema, false],
        [definition.targetSecretSchema, true],
        [definition.bindingConfigSchema, false],
      ] as const) {
        const form = toJsonSchemaForm(schema, { secret });
        expect(form.type).toBe("object");
      }
    });

    it("compiles the fixture binding into a plan that passes the strict plan schema", () => {
      const result = compileSingle(definition, fixture);
      if (!result.ok) throw new Error(JSON.stringify(result.errors, null, 2));
      expect(compiledPlanSchema.parse(result.plan)).toEqual(result.plan);
      expect(result.digest).toMatch(/^[0-9a-f]{64}$/);
      for (const route of result.plan.routes) {
        expect(route.bindingId).toBe(FIXTURE_IDS.binding);
        if (route.auth.type !== "none")
          expect(route.credential?.connectionId).toBe(FIXTURE_IDS.connection);
      }
    });

    it("compiles to the same bytes and digest every time", () => {
      const a = compileSingle(definition, fixture);
      const b = compileSingle(definition, fixture);
      expect(a.ok && b.ok).toBe(true);
      if (a.ok && b.ok) {
        expect(JSON.stringify(b.plan)).toBe(JSON.stringify(a.plan));
        expect(b.digest).toBe(a.digest);
      }
    });

    it("never puts a target or connection secret into the plan", () => {
      const result = compileSingle(definition, fixture);
      if (!result.ok) throw new Error(JSON.stringify(result.errors));
      const text = JSON.stringify(result.plan);
      const secrets = [
        ...Object.values(fixture.target.secrets),
        ...fixture.connection.secretValues,
      ];
      expect(secrets.length).toBeGreaterThan(0);
      for (const secret of secrets) expect(text).not.toContain(secret);
    });

    it("refuses a disabled target, an inactive connection and a kind mismatch with stable codes", () => {
      const codes = (r: CompileResult) => (r.ok ? [] : r.errors.map((e) => e.code));
      expect(codes(compileSingle(definition, fixture, { targetEnabled: false }))).toEqual([
        "target_disabled",
      ]);
      expect(codes(compileSingle(definition, fixture, { connectionStatus: "error" }))).toEqual([
        "connection_not_active",
      ]);
      const otherKind = definition.kind === "agent" ? "connector" : "agent";
      expect(codes(compileSingle(definition, fixture, { bindingKind: otherKind }))).toEqual([
        "kind_mismatch",
      ]);
    });

    it("reports a binding config of the wrong shape as invalid_binding_config with fields", () => {
      const result = compileSingle(definition, fixture, {
        bindingConfig: { unexpected: { nested: 1 } },
      });
      expect(result.ok).toBe(false);
      if (!result.ok) {
        expect(result.errors[0]?.code).toBe("invalid_binding_config");
        expect(result.errors[0]?.category).toBe("shape");
        expect(result.errors[0]?.issues?.length).toBeGreaterThan(0);
      }
    });

    if (fixture.invalidBinding) {
      const invalid = fixture.invalidBinding;
      it("returns binding validation issues with family codes and fields", () => {
        const result = compileSingle(definition, fixture, { bindingConfig: invalid.config });
        expect(result.ok).toBe(false);
        if (!result.ok) {
          expect(result.errors[0]?.code).toBe("binding_validation_failed");
          const issues = result.errors[0]?.issues ?? [];
          expect(issues.map((i) => ({ code: i.code, field: i.field }))).toEqual(invalid.issues);
          for (const issue of issues)
            expect(issue.code.startsWith(`${definition.familyId}.`)).toBe(true);
        }
      });
    }
  });
}
