/**
 * The SPEC §11 reference point for `pnpm bench:gateway`: "a plain Node forwarder (undici pool,
 * header injection, nothing else)". A reverse proxy in its own process that sends every request
 * to one upstream through a keep-alive undici `Pool`, with the credential header set, and pipes
 * the response back. No authentication, matching, policy, metrics or logging.
 *
 *   node --import tsx scripts/bench/gateway-naive-forwarder.ts <port> <upstreamOrigin> <secret>
 *
 * Prints `ready` on stdout once it listens.
 */
import { createServer } from "node:http";
import { Pool } from "undici";

const [port, upstream, secret] = process.argv.slice(2);
if (!port || !upstream || !secret) {
  throw new Error("usage: gateway-naive-forwarder.ts <port> <upstreamOrigin> <secret>");
}

const pool = new Pool(upstream, { keepAliveTimeout: 60_000 });
const authorization = `Bearer ${secret}`;
const upstreamHost = new URL(upstream).host;

const server = createServer({ noDelay: true, keepAliveTimeout: 60_000 }, (req, res) => {
  const headers = { ...req.headers, host: upstreamHost, authorization };
  delete headers.connection;
  const hasBody = req.headers["content-length"] !== undefined;
  pool
    .request({
      method: req.method ?? "GET",
      path: req.url ?? "/",
      headers,
      body: hasBody ? req : null,
    })
    .then(
      ({ statusCode, headers: responseHeaders, body }) => {
        res.writeHead(statusCode, responseHeaders);
        body.pipe(res);
      },
      () => {
        res.writeHead(502);
        res.end();
      },
    );
});
server.listen(Number(port), "127.0.0.1", () => process.stdout.write("ready\n"));
process.once("SIGTERM", () => process.exit(0));
