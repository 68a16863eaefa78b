/**
 * A provider sending one webhook, for the README walkthrough: it signs `{ type, timestamp, data }`
 * with the Standard Webhooks scheme (the reference `standardwebhooks` library) under the target's
 * `whsec_` secret, posts it to Keyway's front door and prints the answer (202 `{ id, duplicate }`).
 *
 *   node scripts/demo-provider.mjs --secret whsec_… [--type invoice.paid] <front-door URL>
 */
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { Webhook } from "standardwebhooks";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    secret: { type: "string" },
    type: { type: "string", default: "invoice.paid" },
  },
});
const [url] = positionals;
if (!values.secret || !url) {
  console.error("usage: node scripts/demo-provider.mjs --secret <whsec_…> [--type T] <url>");
  process.exit(2);
}
const id = `msg_${randomUUID().replaceAll("-", "")}`;
const timestamp = new Date();
const body = JSON.stringify({
  type: values.type,
  timestamp: timestamp.toISOString(),
  data: { id: "in_demo_1", amount: 4200, currency: "eur" },
});
const signature = new Webhook(values.secret).sign(id, timestamp, body);
const response = await fetch(url, {
  method: "POST",
  headers: {
    "content-type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(timestamp.getTime() / 1000)),
    "webhook-signature": signature,
  },
  body,
});
console.log(`${response.status} ${await response.text()}`);
process.exit(response.status === 202 ? 0 : 1);
