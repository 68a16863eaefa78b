/**
 * The container image's entry point (see Dockerfile): `docker run keyway <service> [args]` where
 * service is `control-plane-api`, `data-plane-gateway` or `keyway` (the CLI).
 */
const ENTRIES: Record<string, string> = {
  "control-plane-api": "../apps/control-plane-api/src/main.ts",
  "data-plane-gateway": "../apps/data-plane-gateway/src/main.ts",
  keyway: "../apps/cli/src/main.ts",
};

const [service, ...rest] = process.argv.slice(2);
const entry = service ? ENTRIES[service] : undefined;
if (!entry) {
  console.error(`usage: <${Object.keys(ENTRIES).join("|")}> [args]`);
  process.exit(2);
}
// The service's own entry reads its arguments after the service name.
process.argv = [process.argv[0] ?? "node", entry, ...rest];
await import(entry);

export {};
