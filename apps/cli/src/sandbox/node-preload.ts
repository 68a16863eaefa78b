import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

/**
 * The file `NODE_OPTIONS=--import=…` loads into every Node process of the sandbox. Node reads
 * HTTP(S)_PROXY/NO_PROXY for `fetch` itself only from 22.21 / 24 on and only with
 * `NODE_USE_ENV_PROXY=1`; older versions (Node 20 here) send `fetch` — and with it the MCP SDK's
 * Streamable HTTP client — straight to the host, around the gateway. The preload installs undici's
 * `EnvHttpProxyAgent` as the global dispatcher, which Node's built-in `fetch` and the undici
 * package both use (they share the dispatcher through a global symbol).
 *
 * undici is imported from the CLI's own installation by absolute URL, so the sandbox needs no
 * package of its own; a runtime that copies the files elsewhere (`sandbox env` for a container)
 * must make that URL resolvable or use Node ≥ 22.21.
 */
export function nodeProxyPreload(undiciUrl: string = resolveUndiciUrl()): string {
  return `// Written by \`keyway sandbox\`: routes fetch and undici through the proxy variables.
const [major, minor] = process.versions.node.split(".").map(Number);
const nodeReadsProxyEnv =
  process.env.NODE_USE_ENV_PROXY === "1" && (major > 22 || (major === 22 && minor >= 21));
if (!nodeReadsProxyEnv && (process.env.HTTPS_PROXY || process.env.HTTP_PROXY)) {
  try {
    const loaded = await import(${JSON.stringify(undiciUrl)});
    const undici = loaded.EnvHttpProxyAgent ? loaded : loaded.default;
    undici.setGlobalDispatcher(new undici.EnvHttpProxyAgent());
  } catch (error) {
    process.emitWarning(\`keyway: could not route fetch through the proxy: \${error}\`);
  }
}
`;
}

function resolveUndiciUrl(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve("undici")).href;
}
