/**
 * The container image's entry point (see Dockerfile): `docker run keyway <service> [args]`, where
 * service is `control-plane-api`, `control-plane-worker`, `data-plane-gateway` or `keyway` (the
 * CLI). Each runs from the
 * bundle `pnpm build` wrote (plain JavaScript; no TypeScript loader in production).
 */
const BUNDLES = {
  "control-plane-api": "../apps/control-plane-api/dist/main.mjs",
  "control-plane-worker": "../apps/control-plane-worker/dist/main.mjs",
  "data-plane-gateway": "../apps/data-plane-gateway/dist/main.mjs",
  keyway: "../apps/cli/dist/main.mjs",
};

const [service, ...rest] = process.argv.slice(2);
const bundle =
  service !== undefined && Object.hasOwn(BUNDLES, service) ? BUNDLES[service] : undefined;
if (bundle === undefined) {
  console.error(`usage: <${Object.keys(BUNDLES).join("|")}> [args]`);
  process.exit(2);
}
const url = new URL(bundle, import.meta.url);
// The service reads its own arguments, which follow the service name.
process.argv = [process.argv[0] ?? "node", url.pathname, ...rest];
await import(url.href);
