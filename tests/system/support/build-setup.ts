import { buildServices } from "../../../scripts/build";

/**
 * Vitest global setup for system tests: bundles every service once (about a second), so the
 * tests run the same `apps/<service>/dist/main.mjs` files the image and `pnpm start` run.
 */
export default async function setup(): Promise<void> {
  await buildServices();
}
