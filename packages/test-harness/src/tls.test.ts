import { X509Certificate } from "node:crypto";
import { Agent, fetch } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { echoHandler, type RunningServer, startHttpsServer } from "./http-servers";
import { createTestCa, type TestCa } from "./tls";

describe("createTestCa", () => {
  let ca: TestCa;
  let server: RunningServer;
  const agents: Agent[] = [];
  const agent = (options: ConstructorParameters<typeof Agent>[0]) => {
    const created = new Agent(options);
    agents.push(created);
    return created;
  };

  beforeAll(async () => {
    ca = await createTestCa({ commonName: "Harness Test CA" });
    server = await startHttpsServer(echoHandler, { ca });
  });

  afterAll(async () => {
    await Promise.all(agents.map((created) => created.close()));
    await server?.close();
  });

  it("serves HTTPS that a client trusting the CA accepts", async () => {
    const response = await fetch(`${server.url}/hello`, {
      dispatcher: agent({ connect: { ca: ca.certPem } }),
    });

    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ method: "GET", url: "/hello" });
  });

  it("is refused by a client that does not trust the CA", async () => {
    const error = await fetch(`${server.url}/hello`, { dispatcher: agent({}) }).catch(
      (caught: unknown) => caught,
    );

    expect(error).toBeInstanceOf(TypeError);
    expect((error as TypeError).cause).toMatchObject({
      code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    });
  });

  it("issues leaves whose SANs cover the requested names and addresses", async () => {
    const leaf = await ca.issueLeaf({ hosts: ["localhost", "upstream.test", "127.0.0.1"] });
    const certificate = new X509Certificate(leaf.certPem);

    expect(certificate.subjectAltName).toBe(
      "DNS:localhost, DNS:upstream.test, IP Address:127.0.0.1",
    );
    expect(certificate.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(certificate.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
  });

  it("is trusted for a DNS name only when the leaf covers it", async () => {
    const named = await startHttpsServer(echoHandler, { ca, hosts: ["upstream.test"] });
    try {
      const trusting = { ca: ca.certPem, servername: "upstream.test" };
      const accepted = await fetch(`${named.url}/`, {
        dispatcher: agent({ connect: trusting }),
      });
      expect(accepted.status).toBe(200);
      await accepted.body?.cancel();

      const wrongName = await fetch(`${named.url}/`, {
        dispatcher: agent({ connect: { ...trusting, servername: "other.test" } }),
      }).catch((caught: unknown) => caught);
      expect(wrongName).toBeInstanceOf(TypeError);
      expect((wrongName as TypeError).cause).toMatchObject({
        code: "ERR_TLS_CERT_ALTNAME_INVALID",
      });
    } finally {
      await named.close();
    }
  });
});
