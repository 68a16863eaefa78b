/**
 * The sandboxes of `pnpm bench:storm`, in their own process so that their TLS handshakes do not
 * share an event loop (or a CPU figure) with the control plane. One process serves every round:
 * each line on stdin is a round (a JSON array of session tokens), every token's first request is
 * started at once, each over a connection of its own, and one JSON line is printed per round:
 * each sandbox's latency in milliseconds and this process's CPU time for the round. The process
 * ends when stdin does.
 *
 *   node --import tsx scripts/bench/storm-sandboxes.ts <storm.json>
 *
 * The file holds `{ proxyUrl, url, gatewayCaPem, expectedAuthorizationSha256, client }`.
 *
 * Real sandboxes run on machines of their own; here their client work shares the gateway's two
 * cores, so the harness keeps its own share small without skipping any step of the protocol:
 * - `client: "node"` (default): `CONNECT` written on a `node:net` socket with the session token
 *   as `Proxy-Authorization`, the `200` read, then `node:tls` over the tunnel (SNI, the gateway
 *   CA verified, hostname checked, ALPN `http/1.1` offered and checked) and one HTTP/1.1 `GET`
 *   (the bytes `node:http` sends for it: `Host`, `Connection: close`) whose whole response is
 *   read, framed by `Content-Length` or the chunked coding (`readResponse`). A connection per
 *   sandbox, closed after its answer. Before branch `storm-cp4` the request went through
 *   `node:http`'s client (`ClientRequest`, `IncomingMessage` and their streams): ≈ 0.1–0.2 ms of
 *   CPU per sandbox more for the same bytes on the wire (docs/benchmarks.md, 2026-12-06). What
 *   is left is mostly OpenSSL's client handshake (X25519MLKEM768 on Node 24, the two ECDSA
 *   verifications of the chain and `CertificateVerify`), which every TLS client pays. The leaf
 *   is checked as `ca` and `checkServerIdentity` would (issued and signed by the gateway CA,
 *   current, naming the host) by `sandbox-tls.ts`, without Node's `getPeerCertificate(true)`:
 *   since branch `storm-gw20`, ≈ 0.2–0.5 ms of CPU less per sandbox on Node 20 (OpenSSL 3.0),
 *   ≈ 0.1 ms on Node 24 (docs/benchmarks.md).
 * - `client: "undici"`: one undici `ProxyAgent` per sandbox, as an SDK in a sandbox would use;
 *   ≈ 1.5 ms more CPU per sandbox (measured, docs/benchmarks.md), most of it undici's
 *   per-agent setup and its dispatch.
 * Either way the gateway CA is parsed once into one TLS `SecureContext` that every connection
 * uses: given only `ca`, each connection would build a context of its own (≈ 1 ms of CPU), work
 * a real sandbox on its own machine does once, not once per neighbour. Every sandbox checks that
 * the upstream answered 200 with the digest of the credential the gateway injected.
 */

import { readFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { createInterface } from "node:readline";
import { createSecureContext, connect as tlsConnect } from "node:tls";
import { ProxyAgent, request } from "undici";
import { HEADER_END, readResponse } from "./http1-response";
import { gatewayTrust } from "./sandbox-tls";

interface StormInput {
  proxyUrl: string;
  url: string;
  gatewayCaPem: string;
  expectedAuthorizationSha256: string;
  client?: "node" | "undici";
}

const file = process.argv[2];
if (file === undefined) throw new Error("usage: storm-sandboxes.ts <storm.json>");
const input = JSON.parse(readFileSync(file, "utf8")) as StormInput;

const secureContext = createSecureContext({ ca: input.gatewayCaPem });
const trust = gatewayTrust(input.gatewayCaPem);
const proxy = new URL(input.proxyUrl);
const target = new URL(input.url);
const authority = target.host;

function proxyAuthorization(token: string): string {
  return `Basic ${Buffer.from(`session:${token}`).toString("base64")}`;
}

function checkAnswer(status: number | undefined, body: string): void {
  const parsed = JSON.parse(body) as { authorizationSha256?: unknown };
  if (status !== 200 || parsed.authorizationSha256 !== input.expectedAuthorizationSha256) {
    throw new Error(`a sandbox got ${status} without the injected credential`);
  }
}

/** The request every sandbox sends: the same bytes `node:http` writes for it, framed once. */
const REQUEST = Buffer.from(
  `GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${authority}\r\n` +
    "Connection: close\r\n\r\n",
  "latin1",
);

/**
 * CONNECT over TCP, then TLS through the tunnel, then one HTTP/1.1 request. Resolves with the
 * time until the whole response was read, once the connection has closed.
 */
function firstRequestNode(token: string): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: proxy.hostname, port: Number(proxy.port), noDelay: true });
    socket.once("error", reject);
    socket.write(
      `CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n` +
        `proxy-authorization: ${proxyAuthorization(token)}\r\n\r\n`,
    );
    let head: Buffer = Buffer.alloc(0);
    const onHead = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const end = head.indexOf(HEADER_END);
      if (end < 0) return;
      socket.off("data", onHead);
      socket.pause();
      const statusLine = head.toString("latin1", 0, head.indexOf("\r\n"));
      if (!/^HTTP\/1\.[01] 200 /.test(statusLine)) {
        socket.destroy();
        reject(new Error(`the gateway refused the CONNECT: ${statusLine}`));
        return;
      }
      // The server speaks only after the ClientHello: nothing may follow the CONNECT's answer.
      if (head.length > end + HEADER_END.length) {
        socket.destroy();
        reject(new Error("bytes after the CONNECT answer"));
        return;
      }
      // The leaf is checked on `secureConnect`, before the request is sent (`sandbox-tls.ts`:
      // the gateway CA's, current, naming the host — what `ca` and `checkServerIdentity` check,
      // without Node's `getPeerCertificate(true)`).
      const tls = tlsConnect({
        socket,
        servername: target.hostname,
        ...trust.connectOptions,
        ALPNProtocols: ["http/1.1"],
      });
      let received: Buffer = Buffer.alloc(0);
      let elapsed: number | undefined;
      const fail = (error: unknown) => {
        tls.destroy();
        reject(error);
      };
      const onResponse = (closed: boolean) => {
        const response = readResponse(received, closed);
        if (response === undefined) return;
        elapsed = performance.now() - started;
        tls.off("data", onData);
        checkAnswer(response.status, response.body.toString("utf8"));
        tls.end();
      };
      const onData = (chunk: Buffer) => {
        received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
        try {
          onResponse(false);
        } catch (error) {
          fail(error);
        }
      };
      tls.once("secureConnect", () => {
        try {
          trust.check(tls, target.hostname);
        } catch (error) {
          fail(error);
          return;
        }
        if (tls.alpnProtocol !== "http/1.1") {
          fail(new Error(`the gateway chose ALPN ${String(tls.alpnProtocol)}`));
          return;
        }
        tls.write(REQUEST);
      });
      tls.on("data", onData);
      tls.once("end", () => {
        if (elapsed !== undefined) return;
        try {
          onResponse(true);
        } catch (error) {
          fail(error);
        }
      });
      tls.once("error", reject);
      tls.once("close", () => {
        if (elapsed === undefined) reject(new Error("the connection closed before a response"));
        else resolve(elapsed);
      });
    };
    socket.on("data", onHead);
  });
}

/** Resolves with the time until the whole response was read; the agent is closed by the round. */
async function firstRequestUndici(agent: ProxyAgent): Promise<number> {
  const started = performance.now();
  const response = await request(input.url, { dispatcher: agent });
  const body = await response.body.text();
  const elapsed = performance.now() - started;
  checkAnswer(response.statusCode, body);
  return elapsed;
}

async function undiciRound(tokens: readonly string[]) {
  // Built before the clock starts, as an SDK's client would be before its first request.
  const agents = tokens.map(
    (token) =>
      new ProxyAgent({
        uri: input.proxyUrl,
        token: proxyAuthorization(token),
        // Passed on to `tls.connect`, which uses a prepared context as it is.
        requestTls: { secureContext },
      }),
  );
  const cpuBefore = process.cpuUsage();
  const latenciesMs = await Promise.all(agents.map(firstRequestUndici));
  const cpu = process.cpuUsage(cpuBefore);
  // Closed within the round, so the gateway's work for the tunnels' ends is in its figures too.
  await Promise.all(agents.map((agent) => agent.close()));
  return { latenciesMs, cpu };
}

async function nodeRound(tokens: readonly string[]) {
  const cpuBefore = process.cpuUsage();
  const latenciesMs = await Promise.all(tokens.map(firstRequestNode));
  return { latenciesMs, cpu: process.cpuUsage(cpuBefore) };
}

const round = input.client === "undici" ? undiciRound : nodeRound;

for await (const line of createInterface({ input: process.stdin })) {
  const { latenciesMs, cpu } = await round(JSON.parse(line) as string[]);
  process.stdout.write(
    `${JSON.stringify({ latenciesMs, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`,
  );
}
