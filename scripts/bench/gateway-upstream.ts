/**
 * The upstream of `pnpm bench:gateway`, in its own process so that it never shares an event loop
 * with the gateway or a load generator: a plain HTTP and an HTTPS server on loopback answering
 * every request with the same small JSON body, keep-alive and `TCP_NODELAY` on.
 *
 *   node --import tsx scripts/bench/gateway-upstream.ts <httpPort> <httpsPort> <certFile> <keyFile>
 *                                                      [keepAliveTimeoutMs]
 *
 * Prints `ready` on stdout once both servers listen. `GET /__stats` on the plain HTTP port answers
 * with the HTTPS server's connection counts and this process's CPU time (`UpstreamStats`), so a
 * benchmark can report what its proxy's upstream connections cost here.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";

const [httpPort, httpsPort, certFile, keyFile, keepAliveMs] = process.argv.slice(2);
if (!httpPort || !httpsPort || !certFile || !keyFile) {
  throw new Error("usage: gateway-upstream.ts <httpPort> <httpsPort> <certFile> <keyFile>");
}

/**
 * Answers with the SHA-256 of the `Authorization` header it received: the gateway masks an
 * injected credential that an upstream echoes back, and a digest is none of its forms.
 */
const CHECK_PATH = "/v1/__check";
const STATS_PATH = "/__stats";

/** Since start: TCP connections to the HTTPS server, and their TLS handshakes, full or resumed. */
export interface UpstreamStats {
  tlsConnections: number;
  fullHandshakes: number;
  resumedHandshakes: number;
  /** Connections open to the HTTPS server right now. */
  tlsOpen: number;
  cpuUs: number;
}

const stats = { tlsConnections: 0, fullHandshakes: 0, resumedHandshakes: 0, tlsOpen: 0 };
const BODY = Buffer.from(JSON.stringify({ id: "item_1", ok: true, name: "bench", count: 42 }));
const HEADERS = ["content-type", "application/json", "content-length", String(BODY.length)];

function answer(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === STATS_PATH && !("encrypted" in req.socket)) {
    const cpu = process.cpuUsage();
    const body: UpstreamStats = { ...stats, cpuUs: cpu.user + cpu.system };
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
    return;
  }
  if (req.url === CHECK_PATH) {
    // Lets the benchmark confirm, before loading, that a proxy injected the credential.
    res.writeHead(200, { "content-type": "application/json" });
    const received = req.headers.authorization;
    const digest =
      received === undefined ? null : createHash("sha256").update(received).digest("hex");
    res.end(JSON.stringify({ authorizationSha256: digest }));
    return;
  }
  // Bodies (the POST case) are read and dropped before answering.
  if (req.method === "GET" || req.method === "HEAD") {
    res.writeHead(200, HEADERS);
    res.end(BODY);
    return;
  }
  req.resume();
  req.once("end", () => {
    res.writeHead(200, HEADERS);
    res.end(BODY);
  });
}

// 120 s unless told: Node announces it (`Keep-Alive: timeout=120`) and undici keeps an idle
// connection until 2 s before that.
const keepAliveTimeout = keepAliveMs === undefined ? 120_000 : Number(keepAliveMs);
const options = { noDelay: true, keepAlive: true, keepAliveTimeout, requestTimeout: 0 };
const plain = createServer(options, answer);
const secure = createHttpsServer(
  { ...options, cert: readFileSync(certFile, "utf8"), key: readFileSync(keyFile, "utf8") },
  answer,
);
secure.on("connection", (socket: Socket) => {
  stats.tlsConnections++;
  stats.tlsOpen++;
  socket.once("close", () => stats.tlsOpen--);
});
secure.on("secureConnection", (socket: TLSSocket) => {
  if (socket.isSessionReused()) stats.resumedHandshakes++;
  else stats.fullHandshakes++;
});
await Promise.all([
  new Promise<void>((resolve) => plain.listen(Number(httpPort), "127.0.0.1", resolve)),
  new Promise<void>((resolve) => secure.listen(Number(httpsPort), "127.0.0.1", resolve)),
]);
process.stdout.write("ready\n");
process.once("SIGTERM", () => process.exit(0));
