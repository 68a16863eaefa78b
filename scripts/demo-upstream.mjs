/**
 * A stand-in for a provider's API, for the README walkthrough: `GET /v1/hello` answers 200 when
 * the request carries `Authorization: Bearer $DEMO_API_KEY` and 401 otherwise. It logs the
 * Authorization header it received on stdout, to show what the gateway injected; its responses
 * never echo it, as a real API would not. Plain JavaScript, so the walkthrough needs only `node`.
 *
 *   DEMO_API_KEY=demo-key node scripts/demo-upstream.mjs [--port 8090]
 *
 * Prints `demo API listening on http://127.0.0.1:<port>` first (port 0 picks a free one).
 */
import { createServer } from "node:http";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { port: { type: "string", default: "8090" } } });
const port = Number(values.port);
const apiKey = process.env.DEMO_API_KEY;
if (!apiKey || !Number.isInteger(port)) {
  console.error("usage: DEMO_API_KEY=<key> node scripts/demo-upstream.mjs [--port N]");
  process.exit(2);
}
const expected = `Bearer ${apiKey}`;

const server = createServer((request, response) => {
  const authorization = request.headers.authorization;
  console.log(
    `demo API received ${request.method} ${request.url} with authorization: ${authorization ?? "(none)"}`,
  );
  request.resume();
  const authorized = authorization === expected;
  const body = JSON.stringify(
    authorized ? { message: "hello from the demo API", authorized } : { authorized },
  );
  response.writeHead(authorized ? 200 : 401, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  response.end(body);
});

server.on("error", (error) => {
  console.error(`demo API: ${error.code === "EADDRINUSE" ? `port ${port} is in use` : error}`);
  process.exit(1);
});
server.listen(port, "127.0.0.1", () => {
  const address = server.address();
  const bound = address !== null && typeof address === "object" ? address.port : port;
  console.log(`demo API listening on http://127.0.0.1:${bound}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    server.close(() => process.exit(0));
    // Kept-alive connections (the gateway pools them) would hold close() open.
    server.closeAllConnections();
  });
}
