import { once } from "node:events";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { createSecureContext, type TLSSocket } from "node:tls";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createTestCa, type TestCa } from "@keyway/test-harness";
import { Pool } from "undici";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createUpstreamConnector } from "./upstream-connector";

/**
 * The forward stage's upstream connector keeps new upstream connections on abbreviated TLS
 * handshakes: a burst to a host with no session waits for one handshake's ticket, and the newest
 * session survives garbage collection (undici caches sessions through `WeakRef`s only).
 */

setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;

let ca: TestCa;
let server: Server;
let origin: string;
const handshakes = { full: 0, resumed: 0 };

beforeAll(async () => {
  ca = await createTestCa({ commonName: "Upstream Root CA" });
  const leaf = await ca.issueLeaf({ hosts: ["localhost", "127.0.0.1"] });
  server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (_req, res) => {
    // Answers a little later, so a burst's requests each need a connection of their own.
    setTimeout(() => res.end("ok"), 20);
  });
  server.on("secureConnection", (socket: TLSSocket) => {
    if (socket.isSessionReused()) handshakes.resumed++;
    else handshakes.full++;
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  origin = `https://localhost:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  server.close();
});

beforeEach(() => {
  handshakes.full = 0;
  handshakes.resumed = 0;
});

function connector(trusted: string) {
  return createUpstreamConnector({
    timeoutMs: 5_000,
    secureContext: createSecureContext({ ca: trusted }),
  });
}

async function get(pool: Pool): Promise<string> {
  const { statusCode, body } = await pool.request({ path: "/", method: "GET" });
  expect(statusCode).toBe(200);
  return body.text();
}

describe("upstream connector", () => {
  it("opens a burst's connections with one full handshake: the others resume its session", async () => {
    const pool = new Pool(origin, { connect: connector(ca.certPem) });
    try {
      const answers = await Promise.all(Array.from({ length: 8 }, () => get(pool)));
      expect(answers).toEqual(Array(8).fill("ok"));
      expect(handshakes).toEqual({ full: 1, resumed: 7 });
    } finally {
      await pool.destroy();
    }
  });

  it("still resumes the host's session after a garbage collection", async () => {
    const connect = connector(ca.certPem);
    const first = new Pool(origin, { connect });
    await get(first);
    await first.destroy();
    // A WeakRef's target is kept until the current job ends: collect on a later turn.
    await new Promise((resolve) => setImmediate(resolve));
    collectGarbage();
    const second = new Pool(origin, { connect });
    try {
      await get(second);
    } finally {
      await second.destroy();
    }
    expect(handshakes).toEqual({ full: 1, resumed: 1 });
  });

  it("lets a burst go when the first handshake fails: every request gets the TLS error", async () => {
    const stranger = await createTestCa({ commonName: "Someone Else's CA" });
    const pool = new Pool(origin, { connect: connector(stranger.certPem) });
    try {
      const outcomes = await Promise.allSettled(Array.from({ length: 4 }, () => get(pool)));
      for (const outcome of outcomes) {
        expect(outcome.status).toBe("rejected");
        const reason = (outcome as PromiseRejectedResult).reason as { code?: string };
        expect(reason.code).toBe("UNABLE_TO_VERIFY_LEAF_SIGNATURE");
      }
    } finally {
      await pool.destroy();
    }
  });
});
