import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as connectTls, type TLSSocket } from "node:tls";
import {
  createTestCa,
  type RunningServer,
  startHttpServer,
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
import { exchangeRaw, openSocket, openTunnel, proxyAuthorization } from "./testing/raw-client";
import { startTestGateway, type TestGateway } from "./testing/test-gateway";

/**
 * Request targets the gateway must refuse or read one way only: a `#` anywhere in the target
 * (absolute form and inside tunnels), and hosts with a trailing dot (CONNECT and absolute form
 * must agree, never a 500).
 */

const SECRET = "route-secret-5d1e";
/** A route host that is an IPv4 literal; nothing listens there (route upstreams are configured). */
const IP_HOST = "127.0.0.1:9443";
/**
 * Answers read here end with the connection closing (refusals, `Connection: close`), which
 * resolves `exchangeRaw`; this is only a ceiling for a gateway that would leave it open.
 */
const UNTIL_CLOSED = 10_000;

let cp: TestControlPlane;
let gatewayCa: TestCa;
let upstream: RunningServer;
let gw: TestGateway;
let token: string;
let dir: string;
let gatewayCaPath: string;
const received: ReceivedRequest[] = [];

beforeAll(async () => {
  cp = await startTestControlPlane();
  gatewayCa = await createTestCa({ commonName: "Gateway CA" });
  upstream = await startHttpServer(recordingUpstream(received));
  const routes = [
    testRoute(
      "r_api",
      "api.example.test",
      upstream.url,
      { type: "bearer", name: "authorization", scheme: "Bearer" },
      { pathPrefixes: ["/v1"] },
    ),
    testRoute("r_ip", IP_HOST, upstream.url, { type: "header", name: "x-api-key" }),
  ];
  await cp.setCredential("r_api", { value: SECRET });
  await cp.setCredential("r_ip", { value: SECRET });
  token = await cp.issueToken({
    sessionId: "sess_targets",
    planDigest: await cp.addPlan(testPlan(routes)),
  });
  gw = await startTestGateway({ controlPlane: cp, gatewayCa });
  dir = await mkdtemp(join(tmpdir(), "keyway-gw-targets-"));
  gatewayCaPath = join(dir, "gateway-ca.pem");
  await writeFile(gatewayCaPath, gatewayCa.certPem);
});

afterAll(async () => {
  await gw?.close();
  await Promise.all([cp?.close(), upstream?.close()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

function auth(): string {
  return `Proxy-Authorization: ${proxyAuthorization(token)}\r\n`;
}

function intercept(authority: string, servername = "api.example.test") {
  return openTunnel({
    port: gw.proxyPort,
    authority,
    proxyAuthorization: proxyAuthorization(token),
    tls: { servername, ca: gatewayCa.certPem },
  });
}

describe("a fragment (#) in the request target", () => {
  const targets = ["/v1#/../admin", "/v1/x#frag", "/v1?q=1#frag", "/#"];

  it("is refused with 400 bad_request on the proxy port, before anything is forwarded", async () => {
    const before = received.length;
    for (const path of targets) {
      const socket = await openSocket(gw.proxyPort);
      const answer = await exchangeRaw(
        socket,
        `GET http://api.example.test${path} HTTP/1.1\r\nHost: api.example.test\r\n${auth()}\r\n`,
        UNTIL_CLOSED,
      );
      expect(answer.text, path).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer.text, path).toContain('"code":"bad_request"');
      expect(answer.closed, path).toBe(true);
      socket.destroy();
    }
    // An authority followed directly by `#` too.
    const socket = await openSocket(gw.proxyPort);
    const answer = await exchangeRaw(
      socket,
      `GET http://api.example.test#/v1 HTTP/1.1\r\nHost: api.example.test\r\n${auth()}\r\n`,
      UNTIL_CLOSED,
    );
    expect(answer.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(received.length).toBe(before);
  });

  it("is refused with 400 bad_request inside an intercepted tunnel, and the tunnel closes", async () => {
    const before = received.length;
    for (const path of targets) {
      const tunnel = await intercept("api.example.test:443");
      expect(tunnel.status).toBe(200);
      const answer = await exchangeRaw(
        tunnel.socket,
        `GET ${path} HTTP/1.1\r\nHost: api.example.test\r\n\r\n`,
        UNTIL_CLOSED,
      );
      expect(answer.text, path).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer.text, path).toContain('"code":"bad_request"');
      expect(answer.closed, path).toBe(true);
      tunnel.socket.destroy();
    }
    expect(received.length).toBe(before);
  });

  it("leaves the same request without the fragment alone (the baseline)", async () => {
    const tunnel = await intercept("api.example.test:443");
    const answer = await exchangeRaw(
      tunnel.socket,
      "GET /v1/x HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n",
      UNTIL_CLOSED,
    );
    expect(answer.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(received.at(-1)?.url).toBe("/v1/x");
    expect(received.at(-1)?.headers.authorization).toBe(`Bearer ${SECRET}`);
    tunnel.socket.destroy();
  });
});

describe("a trailing dot in the host", () => {
  const proxy = () => gw.proxyUrlFor(token);

  it("is the same host for absolute form and CONNECT (plain and TLS): both forward", async () => {
    const forms = [
      ["--proxy", proxy(), "http://api.example.test./v1/abs"],
      ["--proxy", proxy(), "--proxytunnel", "http://api.example.test./v1/plain-tunnel"],
      ["--proxy", proxy(), "--cacert", gatewayCaPath, "https://api.example.test./v1/tls-tunnel"],
    ];
    for (const args of forms) {
      const result = await curl(args);
      expect(result.status, `${args.at(-1)} ${result.stderr}`).toBe(200);
      expect(received.at(-1)?.url).toBe(new URL(args.at(-1) ?? "").pathname);
      expect(received.at(-1)?.headers.authorization).toBe(`Bearer ${SECRET}`);
    }
  });

  it("works for an IPv4 route host too: CONNECT 127.0.0.1.:port agrees with the absolute form", async () => {
    const absolute = await curl(["--proxy", proxy(), `http://${IP_HOST.replace(":", ".:")}/abs`]);
    expect(absolute.status, absolute.stderr).toBe(200);
    expect(received.at(-1)?.headers["x-api-key"]).toBe(SECRET);

    // TLS inside the tunnel: the leaf names the address the dot was dropped from.
    const tunnel = await openTunnel({
      port: gw.proxyPort,
      authority: IP_HOST.replace(":", ".:"),
      proxyAuthorization: proxyAuthorization(token),
    });
    expect(tunnel.status).toBe(200);
    const secure = await new Promise<TLSSocket>((resolve, reject) => {
      const tls = connectTls(
        { socket: tunnel.socket, host: "127.0.0.1", ca: gatewayCa.certPem },
        () => resolve(tls),
      );
      tls.once("error", reject);
    });
    const answer = await exchangeRaw(
      secure,
      `GET /tunnel HTTP/1.1\r\nHost: ${IP_HOST.replace(":", ".:")}\r\nConnection: close\r\n\r\n`,
      UNTIL_CLOSED,
    );
    expect(answer.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(received.at(-1)?.url).toBe("/tunnel");
    expect(received.at(-1)?.headers["x-api-key"]).toBe(SECRET);
    secure.destroy();
  });

  it("never answers 500 for a CONNECT to a managed host with a trailing dot, and the gateway stays up", async () => {
    for (const authority of ["api.example.test.:443", "API.Example.Test.:443", "127.0.0.1.:9443"]) {
      const tunnel = await openTunnel({
        port: gw.proxyPort,
        authority,
        proxyAuthorization: proxyAuthorization(token),
      });
      expect(tunnel.head, authority).toMatch(/^HTTP\/1\.1 200 /);
      tunnel.socket.destroy();
    }
    // Shapes that are not a host at all are refused as such.
    for (const authority of ["api.example.test..:443", ".:443", "127.0.0.1..:9443"]) {
      const socket = await openSocket(gw.proxyPort);
      const answer = await exchangeRaw(
        socket,
        `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${auth()}\r\n`,
        UNTIL_CLOSED,
      );
      expect(answer.text, authority).toMatch(/^HTTP\/1\.1 400 /);
      socket.destroy();
    }
    const health = await fetch(`${gw.adminUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(gw.logger.lines.join("\n")).not.toContain('"status":500');
  });
});
