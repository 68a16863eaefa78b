import { defineConfig } from "vitest/config";

// Test groups (CONVENTIONS "Tests"): unit tests beside the code, property tests (fast-check),
// integration tests against real PostgreSQL, and system tests that start real processes.
const shared = ["**/node_modules/**", "**/dist/**"];
// One embedded PostgreSQL per run, started only when integration or system tests are queued.
const postgresGlobalSetup = "packages/test-harness/src/global-setup.ts";

export default defineConfig({
  test: {
    reporters: ["default", ["json", { outputFile: "test-results/vitest.json" }]],
    projects: [
      {
        test: {
          name: "unit",
          include: [
            "{apps,packages}/*/src/**/*.test.ts",
            "scripts/**/*.test.ts",
            "deploy/**/*.test.ts",
          ],
          exclude: [...shared, "**/*.property.test.ts", "**/*.integration.test.ts"],
        },
      },
      {
        test: {
          name: "property",
          include: ["{apps,packages}/*/src/**/*.property.test.ts"],
          exclude: shared,
        },
      },
      {
        test: {
          name: "integration",
          globalSetup: [postgresGlobalSetup],
          include: ["{apps,packages}/*/src/**/*.integration.test.ts"],
          exclude: shared,
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: "system",
          // The gateway runs from its bundle, as deployed; the setup builds it.
          globalSetup: [postgresGlobalSetup, "tests/system/support/build-setup.ts"],
          include: ["tests/system/**/*.test.ts"],
          exclude: shared,
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
