import { X509Certificate } from "node:crypto";
import type { AddressInfo } from "node:net";
import { connect, createServer, type Server, type TLSSocket } from "node:tls";
import { createTestCa } from "@keyway/test-harness";
import { afterEach, describe, expect, it } from "vitest";
import { gatewayTrust } from "./sandbox-tls";

let servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.map((server) => new Promise((done) => server.close(done))));
  servers = [];
});

/** A TLS server on loopback presenting `cert`, answering nothing. */
async function serve(cert: { certPem: string; keyPem: string }): Promise<number> {
  const server = createServer({ cert: cert.certPem, key: cert.keyPem }, (socket) => socket.end());
  servers.push(server);
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  return (server.address() as AddressInfo).port;
}

/** The leaf's check as the storm's sandboxes make it, at `nowMs`: an error message or "ok". */
function checkWithTrust(caPem: string, port: number, host: string, nowMs?: number) {
  const trust = gatewayTrust(caPem);
  return new Promise<string>((resolve, reject) => {
    const socket: TLSSocket = connect(
      { host: "127.0.0.1", port, servername: host, ...trust.connectOptions },
      () => {
        try {
          trust.check(socket, host, nowMs);
          resolve("ok");
        } catch (error) {
          resolve((error as Error).message);
        } finally {
          socket.destroy();
        }
      },
    );
    socket.once("error", reject);
  });
}

/** Node's own verification (`ca`, `rejectUnauthorized`, `checkServerIdentity`): "ok" or its code. */
function checkWithNode(caPem: string, port: number, host: string) {
  return new Promise<string>((resolve) => {
    const socket = connect({ host: "127.0.0.1", port, servername: host, ca: caPem }, () => {
      socket.destroy();
      resolve("ok");
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

describe("gatewayTrust", () => {
  it("accepts what Node's own verification accepts and refuses what it refuses", async () => {
    const gatewayCa = await createTestCa({ commonName: "Bench gateway CA" });
    const otherCa = await createTestCa({ commonName: "Bench gateway CA" });
    const good = await serve(await gatewayCa.issueLeaf({ hosts: ["localhost", "127.0.0.1"] }));
    const foreign = await serve(await otherCa.issueLeaf({ hosts: ["localhost"] }));

    expect(await checkWithNode(gatewayCa.certPem, good, "localhost")).toBe("ok");
    expect(await checkWithTrust(gatewayCa.certPem, good, "localhost")).toBe("ok");
    expect(await checkWithTrust(gatewayCa.certPem, good, "127.0.0.1")).toBe("ok");

    // Another host name.
    expect(await checkWithNode(gatewayCa.certPem, good, "other.test")).toBe(
      "ERR_TLS_CERT_ALTNAME_INVALID",
    );
    expect(await checkWithTrust(gatewayCa.certPem, good, "other.test")).toMatch(
      /does not name other\.test/,
    );
    // A leaf from another CA of the same name (issuer name alike, key not).
    expect(await checkWithNode(gatewayCa.certPem, foreign, "localhost")).not.toBe("ok");
    expect(await checkWithTrust(gatewayCa.certPem, foreign, "localhost")).toMatch(
      /not from the gateway CA/,
    );
  });

  it("refuses a leaf outside its validity", async () => {
    const gatewayCa = await createTestCa();
    const leaf = await gatewayCa.issueLeaf({ hosts: ["localhost"] });
    const port = await serve(leaf);
    const { validFrom, validTo } = new X509Certificate(leaf.certPem);
    expect(await checkWithTrust(gatewayCa.certPem, port, "localhost", Date.parse(validTo))).toBe(
      "ok",
    );
    for (const nowMs of [Date.parse(validFrom) - 1_000, Date.parse(validTo) + 1_000]) {
      expect(await checkWithTrust(gatewayCa.certPem, port, "localhost", nowMs)).toMatch(
        /not valid now/,
      );
    }
  });

  it("refuses to trust a certificate that is not a CA", async () => {
    const leaf = await (await createTestCa()).issueLeaf({ hosts: ["localhost"] });
    expect(() => gatewayTrust(leaf.certPem)).toThrow(/not a CA/);
  });
});
