/**
 * The upstream of `pnpm bench:gateway`, in its own process so that it never shares an event loop
 * with the gateway or a load generator: a plain HTTP and an HTTPS server on loopback answering
 * every request with the same small JSON body, keep-alive and `TCP_NODELAY` on.
 *
 *   node --import tsx scripts/bench/gateway-upstream.ts <httpPort> <httpsPort> <certFile> <keyFile>
 *
 * Prints `ready` on stdout once both servers listen.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";

const [httpPort, httpsPort, certFile, keyFile] = process.argv.slice(2);
if (!httpPort || !httpsPort || !certFile || !keyFile) {
  throw new Error("usage: gateway-upstream.ts <httpPort> <httpsPort> <certFile> <keyFile>");
}

/**
 * Answers with the SHA-256 of the `Authorization` header it received: the gateway masks an
 * injected credential that an upstream echoes back, and a digest is none of its forms.
 */
const CHECK_PATH = "/v1/__check";
const BODY = Buffer.from(JSON.stringify({ id: "item_1", ok: true, name: "bench", count: 42 }));
const HEADERS = ["content-type", "application/json", "content-length", String(BODY.length)];

function answer(req: IncomingMessage, res: ServerResponse): void {
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

const options = { noDelay: true, keepAlive: true, keepAliveTimeout: 120_000, requestTimeout: 0 };
const plain = createServer(options, answer);
const secure = createHttpsServer(
  { ...options, cert: readFileSync(certFile, "utf8"), key: readFileSync(keyFile, "utf8") },
  answer,
);
await Promise.all([
  new Promise<void>((resolve) => plain.listen(Number(httpPort), "127.0.0.1", resolve)),
  new Promise<void>((resolve) => secure.listen(Number(httpsPort), "127.0.0.1", resolve)),
]);
process.stdout.write("ready\n");
process.once("SIGTERM", () => process.exit(0));
