/**
 * The sandboxes of `pnpm bench:storm`, in their own process so that their TLS handshakes do not
 * share an event loop (or a CPU figure) with the control plane: one undici `ProxyAgent` (its own
 * connection) per session token, every first request started at once. The gateway CA is parsed
 * once into one TLS `SecureContext` that every sandbox's connection uses: given only `ca`, each
 * connection would build a context of its own (parsing the CA and loading the default roots, ≈ 1 ms
 * of CPU), work a real sandbox on its own machine does once, not once per neighbour.
 *
 *   node --import tsx scripts/bench/storm-sandboxes.ts <storm.json>
 *
 * The file holds `{ proxyUrl, url, gatewayCaPem, expectedAuthorizationSha256, tokens }`. Prints
 * one JSON line: each sandbox's latency in milliseconds and this process's CPU time for the storm.
 */
import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import { ProxyAgent, request } from "undici";

interface StormInput {
  proxyUrl: string;
  url: string;
  gatewayCaPem: string;
  expectedAuthorizationSha256: string;
  tokens: string[];
}

const file = process.argv[2];
if (file === undefined) throw new Error("usage: storm-sandboxes.ts <storm.json>");
const input = JSON.parse(readFileSync(file, "utf8")) as StormInput;

const secureContext = createSecureContext({ ca: input.gatewayCaPem });
const agents = input.tokens.map(
  (token) =>
    new ProxyAgent({
      uri: input.proxyUrl,
      token: `Basic ${Buffer.from(`session:${token}`).toString("base64")}`,
      // Passed on to `tls.connect`, which uses a prepared context as it is.
      requestTls: { secureContext },
    }),
);

async function firstRequest(agent: ProxyAgent): Promise<number> {
  const started = performance.now();
  const response = await request(input.url, { dispatcher: agent });
  const body = (await response.body.json()) as { authorizationSha256?: unknown };
  const elapsed = performance.now() - started;
  if (
    response.statusCode !== 200 ||
    body.authorizationSha256 !== input.expectedAuthorizationSha256
  ) {
    throw new Error(`a sandbox got ${response.statusCode} without the injected credential`);
  }
  return elapsed;
}

const cpuBefore = process.cpuUsage();
const latenciesMs = await Promise.all(agents.map(firstRequest));
const cpu = process.cpuUsage(cpuBefore);
await Promise.all(agents.map((agent) => agent.close()));
process.stdout.write(`${JSON.stringify({ latenciesMs, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`);
