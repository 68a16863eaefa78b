import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer as createHttpsServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  createTestCa,
  type RunningServer,
  startHttpServer,
  startHttpsServer,
  type TestCa,
} from "@keyway/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestControlPlane, type TestControlPlane } from "./testing/control-plane-stack";
import {
  curl,
  type ReceivedRequest,
  recordingUpstream,
  testPlan,
  testRoute,
} from "./testing/fixtures";
import { exchangeHead, exchangeRaw, openSocket, proxyAuthorization } from "./testing/raw-client";
import { startTestGateway, type TestGateway } from "./testing/test-gateway";
import { startWebSocketEchoServer, type WebSocketEchoServer } from "./testing/websocket-peer";

/**
 * Upstreams behind a private CA (SPEC §7): trusted through the operator's extra CAs on top of the
 * system roots, else refused as 502 `upstream_tls_error` with the reason in the gateway log — on
 * the forward path and the WebSocket relay, never retried, never opening a circuit.
 */

const SECRET = "private-ghes-token-7c41";

let cp: TestControlPlane;
let privateCa: TestCa;
let privateUpstream: RunningServer;
let wrongNameUpstream: RunningServer;
let plainUpstream: RunningServer;
let selfSigned: Server;
let selfSignedConnections = 0;
let selfSignedPem: string;
let wssUpstream: WebSocketEchoServer;
let trusting: TestGateway;
let untrusting: TestGateway;
let token: string;
const received: ReceivedRequest[] = [];

beforeAll(async () => {
  cp = await startTestControlPlane();
  const gatewayCa = await createTestCa({ commonName: "Gateway CA" });
  privateCa = await createTestCa({ commonName: "Acme Internal Root CA" });
  privateUpstream = await startHttpsServer(recordingUpstream(received), { ca: privateCa });
  // Issued by the trusted CA, but for another name.
  wrongNameUpstream = await startHttpsServer(recordingUpstream(received), {
    ca: privateCa,
    hosts: ["elsewhere.example.test"],
  });
  // Spoken to as https, answers in plain HTTP: the handshake itself fails.
  plainUpstream = await startHttpServer(recordingUpstream(received));
  // A self-signed server certificate, as `openssl req -x509` makes them for internal services.
  const self = await selfSignedCertificate();
  selfSignedPem = self.certPem;
  selfSigned = createHttpsServer({ cert: self.certPem, key: self.keyPem }, (_, res) =>
    res.end("reached"),
  );
  selfSigned.on("connection", () => {
    selfSignedConnections++;
  });
  await new Promise<void>((resolve) => selfSigned.listen(0, "127.0.0.1", resolve));
  const selfSignedPort = (selfSigned.address() as AddressInfo).port;
  wssUpstream = await startWebSocketEchoServer({ ca: privateCa });

  const bearer = { type: "bearer", name: "authorization", scheme: "Bearer" } as const;
  const routes = [
    testRoute("r_ghes", "ghes.example.test", privateUpstream.url, bearer),
    testRoute("r_wrong_name", "wrong-name.example.test", wrongNameUpstream.url, bearer),
    testRoute(
      "r_not_tls",
      "not-tls.example.test",
      plainUpstream.url.replace("http:", "https:"),
      bearer,
    ),
    testRoute("r_self", "self-signed.example.test", `https://127.0.0.1:${selfSignedPort}`, bearer),
    testRoute("r_wss", "wss.example.test", wssUpstream.url, bearer),
  ];
  for (const route of routes) await cp.setCredential(route.id, { value: SECRET });
  token = await cp.issueToken({
    sessionId: "sess_tls",
    planDigest: await cp.addPlan(testPlan(routes)),
  });
  const circuitBreaker = { failureThreshold: 1, windowMs: 60_000, coolDownMs: 60_000 };
  trusting = await startTestGateway({
    controlPlane: cp,
    gatewayCa,
    upstream: { ca: [privateCa.certPem, selfSignedPem] },
    circuitBreaker,
  });
  untrusting = await startTestGateway({ controlPlane: cp, gatewayCa, circuitBreaker });
});

afterAll(async () => {
  await Promise.all([trusting?.close(), untrusting?.close()]);
  await Promise.all([
    cp?.close(),
    privateUpstream?.close(),
    wrongNameUpstream?.close(),
    plainUpstream?.close(),
    wssUpstream?.close(),
    new Promise((resolve) => (selfSigned ? selfSigned.close(resolve) : resolve(undefined))),
  ]);
});

/** A self-signed certificate for 127.0.0.1, made by the openssl CLI. */
async function selfSignedCertificate(): Promise<{ certPem: string; keyPem: string }> {
  const dir = await mkdtemp(join(tmpdir(), "keyway-self-signed-"));
  try {
    const [key, cert] = [join(dir, "key.pem"), join(dir, "cert.pem")];
    await promisify(execFile)("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "2",
      "-subj",
      "/CN=internal-api",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ]);
    return { certPem: await readFile(cert, "utf8"), keyPem: await readFile(key, "utf8") };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function get(gw: TestGateway, url: string) {
  return curl(["--proxy", gw.proxyUrlFor(token), url]);
}

/** The access log line of the last request to `host`. */
function lastLine(gw: TestGateway, host: string): Record<string, unknown> {
  const line = gw.logger.lines.filter((l) => l.includes(`"host":"${host}"`)).at(-1);
  if (line === undefined) throw new Error(`no log line for ${host}`);
  return JSON.parse(line) as Record<string, unknown>;
}

describe("an upstream behind a private CA or with a self-signed certificate", () => {
  it("is reached when its CA is among the operator's extra CAs, the credential injected", async () => {
    const result = await get(trusting, "http://ghes.example.test/api/v3/meta");
    expect(result.status, result.body).toBe(200);
    expect(received.at(-1)?.url).toBe("/api/v3/meta");
    expect(received.at(-1)?.headers.authorization).toBe(`Bearer ${SECRET}`);

    const self = await get(trusting, "http://self-signed.example.test/");
    expect(self.status, self.body).toBe(200);
    expect(self.body).toBe("reached");
  });

  it("is refused with 502 upstream_tls_error without it, the reason in the log and no secret", async () => {
    const before = received.length;
    const result = await get(untrusting, "http://ghes.example.test/api/v3/meta");
    expect(result.status).toBe(502);
    expect(JSON.parse(result.body).error.code).toBe("upstream_tls_error");
    expect(received.length).toBe(before);

    const line = lastLine(untrusting, "ghes.example.test");
    expect(line).toMatchObject({ outcome: "upstream_tls_error", status: 502, routeId: "r_ghes" });
    expect(line.reason).toMatch(/^UNABLE_TO_VERIFY_LEAF_SIGNATURE: /);
    const logs = untrusting.logger.lines.join("\n");
    expect(logs).not.toContain(SECRET);
    expect(logs).not.toContain(token);
    const metrics = await (await fetch(`${untrusting.adminUrl}/metrics`)).text();
    expect(metrics).toContain(
      `keyway_gateway_upstream_errors_total{upstream="${new URL(privateUpstream.url).origin}",code="upstream_tls_error"} 1`,
    );

    const self = await get(untrusting, "http://self-signed.example.test/");
    expect(self.status).toBe(502);
    expect(JSON.parse(self.body).error.code).toBe("upstream_tls_error");
    expect(lastLine(untrusting, "self-signed.example.test").reason).toMatch(
      /^DEPTH_ZERO_SELF_SIGNED_CERT: /,
    );
  });
});

describe("TLS failures by name", () => {
  it("reports a wrong name and a failed handshake as upstream_tls_error, even from a trusted CA", async () => {
    const cases = [
      ["wrong-name.example.test", /^ERR_TLS_CERT_ALTNAME_INVALID: /],
      ["not-tls.example.test", /^ERR_SSL_WRONG_VERSION_NUMBER: /],
    ] as const;
    const before = received.length;
    for (const [host, reason] of cases) {
      const result = await get(trusting, `http://${host}/x`);
      expect(result.status, host).toBe(502);
      expect(JSON.parse(result.body).error.code, host).toBe("upstream_tls_error");
      expect(lastLine(trusting, host).reason, host).toMatch(reason);
    }
    expect(received.length).toBe(before);
    expect(trusting.logger.lines.join("\n")).not.toContain(SECRET);
  });

  it("is not retried and does not open the circuit (the threshold here is one failure)", async () => {
    const connectionsBefore = selfSignedConnections;
    for (let i = 0; i < 3; i++) {
      const result = await get(untrusting, "http://self-signed.example.test/again");
      expect(result.status).toBe(502);
      expect(JSON.parse(result.body).error.code).toBe("upstream_tls_error");
    }
    // One connection per request: a GET without a body would be re-sent after a connection error.
    expect(selfSignedConnections - connectionsBefore).toBe(3);
  });
});

describe("the WebSocket relay", () => {
  const HANDSHAKE =
    "GET http://wss.example.test/echo HTTP/1.1\r\nHost: wss.example.test\r\n" +
    "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

  it("trusts the same extra CAs, and refuses an untrusted wss upstream with upstream_tls_error", async () => {
    const auth = `Proxy-Authorization: ${proxyAuthorization(token)}\r\n\r\n`;
    const upgrading = await openSocket(trusting.proxyPort);
    const upgraded = await exchangeHead(upgrading, HANDSHAKE + auth);
    upgrading.destroy();
    expect(upgraded).toMatch(/^HTTP\/1\.1 101 /);
    expect(wssUpstream.handshakes.at(-1)?.authorization).toBe(`Bearer ${SECRET}`);

    // A refused upgrade is answered as a response and the connection closes.
    const refusing = await openSocket(untrusting.proxyPort);
    const refused = await exchangeRaw(refusing, HANDSHAKE + auth, 10_000);
    refusing.destroy();
    expect(refused.closed).toBe(true);
    expect(refused.text).toMatch(/^HTTP\/1\.1 502 /);
    expect(refused.text).toContain('"code":"upstream_tls_error"');
    expect(lastLine(untrusting, "wss.example.test").reason).toMatch(
      /^UNABLE_TO_VERIFY_LEAF_SIGNATURE: /,
    );
  });
});
