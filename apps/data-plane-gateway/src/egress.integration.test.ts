import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createTestCa,
  echoHandler,
  type RunningServer,
  startHttpServer,
  startHttpsServer,
  type TestCa,
} from "@keyway/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ResolveHost, resolveWithSystemDns } from "./pipeline/authorize";
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
 * Hosts no route names (splice, deny, allow-lists, SSRF refusals), the inner Host rule of
 * intercepted tunnels, and request smuggling shapes on raw sockets.
 */

let cp: TestControlPlane;
let gatewayCa: TestCa;
let upstreamCa: TestCa;
let routeUpstream: RunningServer;
let outsideHttps: RunningServer;
let outsideHttp: RunningServer;
let allowing: TestGateway;
let denying: TestGateway;
let strict: TestGateway;
let token: string;
let allowListToken: string;
let dir: string;
let gatewayCaPath: string;
let upstreamCaPath: string;
const received: ReceivedRequest[] = [];

// Test names resolve to the loopback upstreams; anything else goes to the system resolver.
const names: Record<string, string> = {
  "outside.example.test": "127.0.0.1",
  "ok.example.test": "127.0.0.1",
  "rebind.example.test": "127.0.0.1",
  "metadata.example.test": "169.254.169.254",
  "mixed.example.test": "93.184.216.34",
};
const resolveHost: ResolveHost = async (hostname) => {
  const address = names[hostname];
  if (address === undefined) return resolveWithSystemDns(hostname);
  const answers = [{ address, family: 4 as const }];
  if (hostname === "mixed.example.test") answers.push({ address: "10.1.2.3", family: 4 });
  return answers;
};

beforeAll(async () => {
  cp = await startTestControlPlane();
  gatewayCa = await createTestCa({ commonName: "Gateway CA" });
  upstreamCa = await createTestCa({ commonName: "Upstream CA" });
  routeUpstream = await startHttpServer(recordingUpstream(received));
  outsideHttps = await startHttpsServer(echoHandler, {
    ca: upstreamCa,
    hosts: ["outside.example.test", "ok.example.test"],
  });
  outsideHttp = await startHttpServer(echoHandler);

  const routes = [
    testRoute("r_api", "api.example.test", routeUpstream.url, {
      type: "bearer",
      name: "authorization",
      scheme: "Bearer",
    }),
  ];
  await cp.setCredential("r_api", { value: "route-secret" });
  token = await cp.issueToken({
    sessionId: "sess_egress",
    planDigest: await cp.addPlan(testPlan(routes)),
  });
  const allowListPlan = testPlan(routes, {
    default: "deny",
    allowHosts: [`ok.example.test:${outsideHttps.port}`],
  });
  allowListToken = await cp.issueToken({
    sessionId: "sess_allowlist",
    planDigest: await cp.addPlan(allowListPlan),
  });

  const common = { controlPlane: cp, gatewayCa, resolveHost };
  allowing = await startTestGateway({
    ...common,
    egress: { defaultPolicy: "allow", allowPrivateNetworks: true },
  });
  denying = await startTestGateway({
    ...common,
    egress: { defaultPolicy: "deny", allowHosts: ["*.allowed.test"], allowPrivateNetworks: true },
  });
  strict = await startTestGateway({ ...common, egress: { defaultPolicy: "allow" } });

  dir = await mkdtemp(join(tmpdir(), "keyway-gw-egress-"));
  gatewayCaPath = join(dir, "gateway-ca.pem");
  upstreamCaPath = join(dir, "upstream-ca.pem");
  await writeFile(gatewayCaPath, gatewayCa.certPem);
  await writeFile(upstreamCaPath, upstreamCa.certPem);
});

afterAll(async () => {
  await Promise.all([allowing?.close(), denying?.close(), strict?.close()]);
  await Promise.all([
    cp?.close(),
    routeUpstream?.close(),
    outsideHttps?.close(),
    outsideHttp?.close(),
  ]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("unmanaged hosts", () => {
  it("splices the TCP stream untouched when policy allows (the client sees the real certificate)", async () => {
    const url = `https://outside.example.test:${outsideHttps.port}/spliced`;
    const result = await curl([
      "--proxy",
      allowing.proxyUrlFor(token),
      "--cacert",
      upstreamCaPath,
      "-H",
      "Authorization: Bearer client-own",
      url,
    ]);
    expect(result.stderr).toBe("");
    expect(result.status).toBe(200);
    // Nothing was injected or removed: the client's own Authorization reached the host.
    expect(JSON.parse(result.body).headers.authorization).toBe("Bearer client-own");

    // Not intercepted: a client trusting only the gateway CA refuses the real certificate.
    const intercepted = await curl([
      "--proxy",
      allowing.proxyUrlFor(token),
      "--cacert",
      gatewayCaPath,
      url,
    ]);
    expect(intercepted.status).toBe(0);
    expect(intercepted.stderr).toMatch(/certificate/i);
  });

  it("forwards unmanaged plain HTTP to the resolved address when policy allows", async () => {
    const result = await curl([
      "--proxy",
      allowing.proxyUrlFor(token),
      `http://outside.example.test:${outsideHttp.port}/plain?x=1`,
    ]);
    expect(result.status).toBe(200);
    const echoed = JSON.parse(result.body);
    expect(echoed.url).toBe("/plain?x=1");
    expect(echoed.headers.host).toBe(`outside.example.test:${outsideHttp.port}`);
    expect(echoed.headers["proxy-authorization"]).toBeUndefined();
  });

  it("answers 403 policy_denied when policy denies, for CONNECT and plain HTTP", async () => {
    const tunnel = await openTunnel({
      port: denying.proxyPort,
      authority: `outside.example.test:${outsideHttps.port}`,
      proxyAuthorization: proxyAuthorization(token),
    });
    expect(tunnel.status).toBe(403);
    expect(tunnel.head).toContain('"code":"policy_denied"');
    tunnel.socket.destroy();

    const plain = await curl([
      "--proxy",
      denying.proxyUrlFor(token),
      `http://outside.example.test:${outsideHttp.port}/`,
    ]);
    expect(plain.status).toBe(403);
    expect(JSON.parse(plain.body).error.code).toBe("policy_denied");
  });

  it("honours the deployment allow-list (subdomains only) and a profile's own allow-list", async () => {
    names["api.allowed.test"] = "127.0.0.1";
    names["allowed.test"] = "127.0.0.1";
    const sub = await curl([
      "--proxy",
      denying.proxyUrlFor(token),
      `http://api.allowed.test:${outsideHttp.port}/`,
    ]);
    expect(sub.status).toBe(200);
    const apex = await curl([
      "--proxy",
      denying.proxyUrlFor(token),
      `http://allowed.test:${outsideHttp.port}/`,
    ]);
    expect(apex.status).toBe(403);

    // The plan's policy replaces the deployment's: deny except ok.example.test on that port.
    const listed = await curl([
      "--proxy",
      allowing.proxyUrlFor(allowListToken),
      "--cacert",
      upstreamCaPath,
      `https://ok.example.test:${outsideHttps.port}/`,
    ]);
    expect(listed.status).toBe(200);
    const unlisted = await openTunnel({
      port: allowing.proxyPort,
      authority: `outside.example.test:${outsideHttps.port}`,
      proxyAuthorization: proxyAuthorization(allowListToken),
    });
    expect(unlisted.status).toBe(403);
    unlisted.socket.destroy();
  });

  it("refuses loopback, link-local, private and rebinding destinations (SSRF)", async () => {
    const refused = [
      `127.0.0.1:${outsideHttps.port}`,
      "169.254.169.254:80",
      "10.0.0.1:443",
      "192.168.1.1:443",
      "100.64.0.1:443",
      `[::1]:${outsideHttps.port}`,
      `[::ffff:127.0.0.1]:${outsideHttps.port}`,
      `rebind.example.test:${outsideHttps.port}`,
      "metadata.example.test:80",
      "mixed.example.test:443",
    ];
    for (const authority of refused) {
      const tunnel = await openTunnel({
        port: strict.proxyPort,
        authority,
        proxyAuthorization: proxyAuthorization(token),
      });
      expect(tunnel.status, authority).toBe(403);
      expect(tunnel.head, authority).toContain('"code":"private_address_denied"');
      tunnel.socket.destroy();
    }
    const plain = await curl([
      "--proxy",
      strict.proxyUrlFor(token),
      `http://localhost:${outsideHttp.port}/`,
    ]);
    expect(plain.status).toBe(403);
    expect(JSON.parse(plain.body).error.code).toBe("private_address_denied");
  });

  it("exempts route upstreams: a route may point at a loopback address", async () => {
    const result = await curl([
      "--proxy",
      strict.proxyUrlFor(token),
      "http://api.example.test/v1/ok",
    ]);
    expect(result.status).toBe(200);
    expect(received.at(-1)?.headers.authorization).toBe("Bearer route-secret");
  });
});

describe("intercepted tunnels", () => {
  it("refuses an inner request whose Host is not the CONNECT host (421)", async () => {
    const tunnel = await openTunnel({
      port: strict.proxyPort,
      authority: "api.example.test:443",
      proxyAuthorization: proxyAuthorization(token),
      tls: { servername: "api.example.test", ca: gatewayCa.certPem },
    });
    expect(tunnel.status).toBe(200);
    const before = received.length;
    const answer = await exchangeRaw(
      tunnel.socket,
      "GET /v1/x HTTP/1.1\r\nHost: other.example.test\r\n\r\n",
    );
    expect(answer.text).toMatch(/^HTTP\/1\.1 421 /);
    expect(answer.text).toContain('"code":"misdirected_request"');
    expect(received.length).toBe(before);
    tunnel.socket.destroy();
  });

  it("serves several requests on one intercepted connection (keep-alive)", async () => {
    const tunnel = await openTunnel({
      port: strict.proxyPort,
      authority: "api.example.test:443",
      proxyAuthorization: proxyAuthorization(token),
      tls: { servername: "api.example.test", ca: gatewayCa.certPem },
    });
    const request = "GET /v1/a HTTP/1.1\r\nHost: api.example.test\r\n\r\n";
    const answer = await exchangeRaw(tunnel.socket, request + request, 500);
    expect(answer.text.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(2);
    tunnel.socket.destroy();
  });
});

describe("request smuggling shapes", () => {
  const auth = () => `Proxy-Authorization: ${proxyAuthorization(token)}\r\n`;
  const shapes = () => ({
    "Content-Length with Transfer-Encoding":
      "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX",
    "conflicting Content-Length": "Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
    "bad chunk size": "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "Transfer-Encoding not ending in chunked": "Transfer-Encoding: chunked, identity\r\n\r\nabc",
    "obsolete line folding": "X-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
  });

  it("answers 400 and closes on the proxy port", async () => {
    const before = received.length;
    for (const [name, tail] of Object.entries(shapes())) {
      const socket = await openSocket(strict.proxyPort);
      const answer = await exchangeRaw(
        socket,
        `POST http://api.example.test/v1/x HTTP/1.1\r\nHost: api.example.test\r\n${auth()}${tail}`,
      );
      expect(answer.text, name).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer.closed, name).toBe(true);
    }
    expect(received.length).toBe(before);
  });

  it("answers 400 and closes inside an intercepted tunnel", async () => {
    const before = received.length;
    for (const [name, tail] of Object.entries(shapes())) {
      const tunnel = await openTunnel({
        port: strict.proxyPort,
        authority: "api.example.test:443",
        proxyAuthorization: proxyAuthorization(token),
        tls: { servername: "api.example.test", ca: gatewayCa.certPem },
      });
      const answer = await exchangeRaw(
        tunnel.socket,
        `POST /v1/x HTTP/1.1\r\nHost: api.example.test\r\n${tail}`,
      );
      expect(answer.text, name).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer.closed, name).toBe(true);
    }
    expect(received.length).toBe(before);
  });
});
