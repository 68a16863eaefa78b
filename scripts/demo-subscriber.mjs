/**
 * A webhook subscriber for the README walkthrough: it receives Keyway's deliveries and verifies
 * each with the reference Standard Webhooks library (`standardwebhooks`), as a subscriber of
 * ours would. Verified messages are logged and listed at `GET /received`; a bad signature is
 * answered 401. Plain JavaScript, so the walkthrough needs only `node`.
 *
 *   WEBHOOK_SECRET=whsec_… node scripts/demo-subscriber.mjs [--port 8091]
 *
 * `GET /received?wait=N` waits up to N seconds for a first message, then answers the list.
 */
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { Webhook } from "standardwebhooks";

const { values } = parseArgs({ options: { port: { type: "string", default: "8091" } } });
const port = Number(values.port);
const secret = process.env.WEBHOOK_SECRET;
if (!secret || !Number.isInteger(port)) {
  console.error("usage: WEBHOOK_SECRET=<whsec_…> node scripts/demo-subscriber.mjs [--port N]");
  process.exit(2);
}
const webhook = new Webhook(secret);
const received = [];
const waiting = new Set();

function answer(response, status, body) {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  response.end(text);
}

const server = createServer((request, response) => {
  const url = new URL(request.url ?? "/", "http://localhost");
  if (request.method === "GET" && url.pathname === "/received") {
    const waitMs = Math.min(Number(url.searchParams.get("wait") ?? 0), 30) * 1000;
    if (received.length > 0 || !(waitMs > 0)) return answer(response, 200, received);
    const done = () => {
      clearTimeout(timer);
      waiting.delete(done);
      answer(response, 200, received);
    };
    const timer = setTimeout(done, waitMs);
    waiting.add(done);
    return;
  }
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    try {
      const message = webhook.verify(body, request.headers);
      received.push({ id: request.headers["webhook-id"], type: message.type });
      console.log(
        `demo subscriber verified ${message.type} (webhook-id ${request.headers["webhook-id"]})`,
      );
      for (const done of [...waiting]) done();
      response.writeHead(204).end();
    } catch (error) {
      console.log(`demo subscriber refused a delivery: ${error.message}`);
      answer(response, 401, { error: "signature does not verify" });
    }
  });
});

server.on("error", (error) => {
  console.error(
    `demo subscriber: ${error.code === "EADDRINUSE" ? `port ${port} is in use` : error}`,
  );
  process.exit(1);
});
server.listen(port, "127.0.0.1", () => {
  console.log(`demo subscriber listening on http://127.0.0.1:${port}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
