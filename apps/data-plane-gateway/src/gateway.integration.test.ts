import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { gunzipSync, gzipSync } from "node:zlib";
import {
  createTestCa,
  type RunningServer,
  startHttpServer,
  startHttpsServer,
  type TestCa,
} from "@keyway/test-harness";
import { ProxyAgent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestControlPlane, type TestControlPlane } from "./testing/control-plane-stack";
import {
  curl,
  type ReceivedRequest,
  recordingUpstream,
  testPlan,
  testRoute,
} from "./testing/fixtures";
import { startTestGateway, type TestGateway } from "./testing/test-gateway";

const SECRET_BEARER = "sk-live-bearer-0123456789";
const SECRET_HEADER = "hdr-secret-abcdef";
const SECRET_QUERY = "qry-secret-987";
const SECRET_BASIC = "ghs_basicsecret42";
const ALL_SECRETS = [SECRET_BEARER, SECRET_HEADER, SECRET_QUERY, SECRET_BASIC];
const GZIP_BODY = gzipSync(Buffer.from("compressed payload ".repeat(200)));

let cp: TestControlPlane;
let gatewayCa: TestCa;
let upstreamCa: TestCa;
let httpsUpstream: RunningServer;
let httpUpstream: RunningServer;
let gw: TestGateway;
let token: string;
let caDir: string;
let gatewayCaPath: string;
const received: ReceivedRequest[] = [];

function lastReceived(): ReceivedRequest {
  const last = received.at(-1);
  if (last === undefined) throw new Error("the upstream received nothing");
  return last;
}

function basicProxyToken(sessionToken: string): string {
  return `Basic ${Buffer.from(`session:${sessionToken}`).toString("base64")}`;
}

beforeAll(async () => {
  cp = await startTestControlPlane();
  gatewayCa = await createTestCa({ commonName: "Keyway Gateway Test CA" });
  upstreamCa = await createTestCa({ commonName: "Upstream Test CA" });
  const record = recordingUpstream(received);
  const upstream = async (
    req: import("node:http").IncomingMessage,
    res: import("node:http").ServerResponse,
  ) => {
    if (req.url === "/v1/redirect") {
      req.resume();
      res.writeHead(302, { location: "https://elsewhere.example.test/landing" });
      res.end();
      return;
    }
    if (req.url === "/v1/gzip") {
      req.resume();
      res.writeHead(200, {
        "content-type": "text/plain",
        "content-encoding": "gzip",
        "content-length": GZIP_BODY.length,
      });
      res.end(GZIP_BODY);
      return;
    }
    await record(req, res);
  };
  httpsUpstream = await startHttpsServer(upstream, { ca: upstreamCa });
  httpUpstream = await startHttpServer(upstream);

  const plan = testPlan([
    testRoute(
      "r_api",
      "api.example.test",
      httpsUpstream.url,
      { type: "bearer", name: "authorization", scheme: "Bearer" },
      { pathPrefixes: ["/v1"] },
    ),
    testRoute("r_plain", "plain.example.test", httpUpstream.url, {
      type: "header",
      name: "x-api-key",
    }),
    testRoute("r_query", "query.example.test", httpUpstream.url, {
      type: "query",
      name: "api_key",
    }),
    testRoute(
      "r_git",
      "git.example.test",
      httpsUpstream.url,
      { type: "basic", name: "authorization", username: "x-access-token" },
      { methods: ["GET", "POST"], pathPrefixes: ["/acme/widgets.git"] },
    ),
  ]);
  await cp.setCredential("r_api", { value: SECRET_BEARER });
  await cp.setCredential("r_plain", { value: SECRET_HEADER });
  await cp.setCredential("r_query", { value: SECRET_QUERY });
  await cp.setCredential("r_git", { value: SECRET_BASIC });
  const digest = await cp.addPlan(plan);
  token = await cp.issueToken({ sessionId: "sess_main", planDigest: digest });

  gw = await startTestGateway({ controlPlane: cp, gatewayCa, upstreamCa });
  caDir = await mkdtemp(join(tmpdir(), "keyway-gw-test-"));
  gatewayCaPath = join(caDir, "gateway-ca.pem");
  await writeFile(gatewayCaPath, gatewayCa.certPem);
});

afterAll(async () => {
  await gw?.close();
  await Promise.all([cp?.close(), httpsUpstream?.close(), httpUpstream?.close()]);
  if (caDir) await rm(caDir, { recursive: true, force: true });
});

function curlVia(sessionToken: string, ...args: string[]) {
  return curl(["--proxy", gw.proxyUrlFor(sessionToken), "--cacert", gatewayCaPath, ...args]);
}

describe("curl through the gateway", () => {
  it("injects the bearer credential over intercepted HTTPS and replaces the client's own", async () => {
    const result = await curlVia(
      token,
      "-H",
      "Authorization: Bearer placeholder-from-sandbox",
      "https://api.example.test/v1/models?limit=2",
    );
    expect(result.stderr).toBe("");
    expect(result.status).toBe(200);
    const seen = lastReceived();
    expect(seen.url).toBe("/v1/models?limit=2");
    expect(seen.headers.authorization).toBe(`Bearer ${SECRET_BEARER}`);
    expect(seen.rawHeaders.filter((h) => h.toLowerCase() === "authorization")).toHaveLength(1);
    expect(seen.headers["proxy-authorization"]).toBeUndefined();
    expect(seen.headers.host).toBe(new URL(httpsUpstream.url).host);
    for (const secret of ALL_SECRETS) expect(result.headers + result.body).not.toContain(secret);
  });

  it("injects a header credential on plain HTTP and drops the client's copy", async () => {
    const result = await curlVia(
      token,
      "-H",
      "x-api-key: placeholder",
      "-H",
      "Authorization: Basic c29tZTp0aGluZw==",
      "http://plain.example.test/items",
    );
    expect(result.status).toBe(200);
    const seen = lastReceived();
    expect(seen.headers["x-api-key"]).toBe(SECRET_HEADER);
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.headers["proxy-authorization"]).toBeUndefined();
    expect(result.body).not.toContain(SECRET_HEADER);
  });

  it("replaces a placeholder query parameter and keeps the rest of the query", async () => {
    const result = await curlVia(
      token,
      "http://query.example.test/search?q=a%20b&api_key=PLACEHOLDER&page=2",
    );
    expect(result.status).toBe(200);
    expect(lastReceived().url).toBe(`/search?q=a%20b&page=2&api_key=${SECRET_QUERY}`);
  });

  it("injects Basic credentials with the route's username", async () => {
    const result = await curlVia(token, "https://git.example.test/acme/widgets.git/info/refs");
    expect(result.status).toBe(200);
    const expected = Buffer.from(`x-access-token:${SECRET_BASIC}`).toString("base64");
    expect(lastReceived().headers.authorization).toBe(`Basic ${expected}`);
  });

  it("answers 403 policy_denied on a managed host outside the routes", async () => {
    const before = received.length;
    for (const url of [
      "https://api.example.test/v2/other",
      "https://git.example.test/acme/secret.git/info/refs",
      "http://plain.example.test/a/%2e%2e/b",
    ]) {
      const result = await curlVia(token, "--path-as-is", url);
      expect(result.status, url).toBe(403);
      expect(JSON.parse(result.body)).toEqual({
        error: { code: "policy_denied", message: expect.any(String) },
      });
    }
    const deleted = await curlVia(
      token,
      "-X",
      "DELETE",
      "https://git.example.test/acme/widgets.git",
    );
    expect(deleted.status).toBe(403);
    expect(received.length).toBe(before);
  });

  it("returns redirects instead of following them", async () => {
    const result = await curlVia(token, "https://api.example.test/v1/redirect");
    expect(result.status).toBe(302);
    expect(result.headers).toContain("location: https://elsewhere.example.test/landing");
  });

  it("answers 407 without a token, with a bad one, and with an expired one", async () => {
    const expired = await cp.issueToken({
      sessionId: "sess_expired",
      planDigest: "unused",
      expiresAt: new Date(Date.now() - 60_000),
    });
    const cases = [
      curl(["--proxy", gw.proxyUrl, "http://plain.example.test/x"]),
      curl(["--proxy", gw.proxyUrl, "--cacert", gatewayCaPath, "https://api.example.test/v1/x"]),
      curlVia("not-a-token", "http://plain.example.test/x"),
      curlVia(`${token.slice(0, -4)}AAAA`, "http://plain.example.test/x"),
      curlVia(expired, "http://plain.example.test/x"),
    ];
    const expiredResult = await cases[4];
    expect(JSON.parse(expiredResult?.body ?? "{}").error.message).toContain("expired");
    for (const result of await Promise.all(cases)) {
      if (result.status === 0) {
        // curl reports a refused CONNECT as an error; the proxy's answer is in stderr.
        expect(result.stderr).toContain("407");
        continue;
      }
      expect(result.status).toBe(407);
      expect(result.headers.toLowerCase()).toContain('proxy-authenticate: basic realm="keyway"');
      expect(JSON.parse(result.body).error.code).toBe("proxy_auth_required");
    }
  });
});

describe("undici through the gateway", () => {
  it("reaches HTTPS and HTTP routes with the credential injected", async () => {
    const agent = new ProxyAgent({
      uri: gw.proxyUrl,
      token: basicProxyToken(token),
      requestTls: { ca: gatewayCa.certPem },
    });
    try {
      const https = await request("https://api.example.test/v1/chat", {
        dispatcher: agent,
        method: "POST",
        headers: {
          authorization: "Bearer sandbox-placeholder",
          "content-type": "application/json",
        },
        body: JSON.stringify({ hello: "world" }),
      });
      const httpsBody = await https.body.text();
      expect(https.statusCode).toBe(200);
      expect(lastReceived().headers.authorization).toBe(`Bearer ${SECRET_BEARER}`);
      expect(lastReceived().bodyBytes).toBe(17);
      expect(httpsBody).not.toContain(SECRET_BEARER);

      // undici tunnels http:// through CONNECT too: plain HTTP inside an intercepted tunnel.
      const plain = await request("http://plain.example.test/tunnelled", { dispatcher: agent });
      await plain.body.dump();
      expect(plain.statusCode).toBe(200);
      expect(lastReceived().headers["x-api-key"]).toBe(SECRET_HEADER);
    } finally {
      await agent.close();
    }
  });

  it("sends absolute-form requests when not tunnelling, with keep-alive", async () => {
    const agent = new ProxyAgent({
      uri: gw.proxyUrl,
      token: basicProxyToken(token),
      proxyTunnel: false,
    });
    try {
      for (let i = 0; i < 3; i++) {
        const response = await request(`http://plain.example.test/n/${i}`, { dispatcher: agent });
        await response.body.dump();
        expect(response.statusCode).toBe(200);
        expect(lastReceived().url).toBe(`/n/${i}`);
      }
    } finally {
      await agent.close();
    }
  });

  it("delivers a gzip answer decoded on a route with a credential (so it can be scrubbed)", async () => {
    const agent = new ProxyAgent({
      uri: gw.proxyUrl,
      token: basicProxyToken(token),
      requestTls: { ca: gatewayCa.certPem },
    });
    try {
      const response = await request("https://api.example.test/v1/gzip", {
        dispatcher: agent,
        headers: { "accept-encoding": "gzip" },
      });
      const bytes = Buffer.from(await response.body.arrayBuffer());
      // Compression passes through untouched on routes without a credential
      // (`scrub/scrub.integration.test.ts`).
      expect(response.headers["content-encoding"]).toBeUndefined();
      expect(bytes.equals(gunzipSync(GZIP_BODY))).toBe(true);
    } finally {
      await agent.close();
    }
  });
});

describe("admin port", () => {
  it("reports health, readiness and Prometheus metrics", async () => {
    const health = await request(`${gw.adminUrl}/healthz`);
    expect(health.statusCode).toBe(200);
    await health.body.dump();
    const ready = await request(`${gw.adminUrl}/readyz`);
    expect(await ready.body.json()).toEqual({
      ready: true,
      checks: { jwks: true, events: true, withinOutageGrace: true },
    });
    const metrics = await request(`${gw.adminUrl}/metrics`);
    const text = await metrics.body.text();
    expect(metrics.headers["content-type"]).toContain("text/plain");
    // Labelled by the route's upstream origin, never by route id.
    const origin = httpsUpstream.url;
    expect(text).toMatch(
      new RegExp(`keyway_gateway_requests_total\\{upstream="${origin}",status="200"\\} [1-9]`),
    );
    expect(text).toMatch(/keyway_gateway_credential_cache_total\{result="hit"\} [1-9]/);
    expect(text).toContain(
      `keyway_gateway_request_duration_seconds_bucket{le="+Inf",upstream="${origin}"}`,
    );
    expect(text).toMatch(/keyway_gateway_plan_fetches_total\{result="ok"\} [1-9]/);
    expect(text).not.toContain("r_api");
  });

  it("logs one JSON line per request, with no secret or token", async () => {
    const lines = gw.logger.lines.map((line) => JSON.parse(line));
    const requests = lines.filter((line) => line.msg === "request");
    expect(requests.length).toBeGreaterThan(5);
    expect(requests.find((line) => line.routeId === "r_api")).toMatchObject({
      sessionId: "sess_main",
      bindingId: "bind_r_api",
      status: 200,
      outcome: "forwarded",
      traceId: expect.stringMatching(/^[0-9a-f]{32}$/),
    });
    const all = gw.logger.lines.join("\n");
    for (const secret of [...ALL_SECRETS, token]) expect(all).not.toContain(secret);
  });
});

describe("TLS interception", () => {
  /** A CONNECT tunnel to `api.example.test`, then TLS with the gateway's leaf over it. */
  async function interceptedTls(
    session?: Buffer,
    ALPNProtocols?: string[],
  ): Promise<{ tls: TLSSocket; ticket: Promise<[Buffer]> }> {
    const connect = httpRequest({
      host: "127.0.0.1",
      port: gw.proxyPort,
      method: "CONNECT",
      path: "api.example.test:443",
      headers: { "proxy-authorization": basicProxyToken(token) },
    });
    connect.end();
    const [res, socket] = (await once(connect, "connect")) as [{ statusCode: number }, Socket];
    expect(res.statusCode).toBe(200);
    const tls = tlsConnect({
      socket,
      servername: "api.example.test",
      ca: gatewayCa.certPem,
      ...(session === undefined ? {} : { session }),
      ...(ALPNProtocols === undefined ? {} : { ALPNProtocols }),
    });
    // TLS 1.3 tickets may arrive with the end of the handshake: listen from the start.
    const ticket = once(tls, "session") as Promise<[Buffer]>;
    // A refused handshake rejects it too; whoever awaits the ticket still sees that.
    ticket.catch(() => undefined);
    await once(tls, "secureConnect");
    return { tls, ticket };
  }

  /** One request on the tunnel; resolves with the response's status line. */
  async function getOnce(tls: TLSSocket): Promise<string> {
    tls.write("GET /v1/models HTTP/1.1\r\nhost: api.example.test\r\nconnection: close\r\n\r\n");
    const chunks: Buffer[] = [];
    for await (const chunk of tls) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("latin1").split("\r\n")[0] ?? "";
  }

  it("resumes a sandbox's TLS session in its next tunnel to the same host (one context per host)", async () => {
    const first = await interceptedTls();
    expect(first.tls.isSessionReused()).toBe(false);
    expect(await getOnce(first.tls)).toBe("HTTP/1.1 200 OK");
    const [session] = await first.ticket;

    const second = await interceptedTls(session);
    // An abbreviated handshake: no certificate signed or verified again.
    expect(second.tls.isSessionReused()).toBe(true);
    expect(await getOnce(second.tls)).toBe("HTTP/1.1 200 OK");
    expect(lastReceived().headers.authorization).toBe(`Bearer ${SECRET_BEARER}`);
  });

  it("negotiates HTTP/1.1 by ALPN with a client that offers h2 first", async () => {
    const { tls } = await interceptedTls(undefined, ["h2", "http/1.1"]);
    expect(tls.alpnProtocol).toBe("http/1.1");
    expect(await getOnce(tls)).toBe("HTTP/1.1 200 OK");
  });

  it("refuses the handshake of a client that speaks only h2 (no ALPN protocol in common)", async () => {
    await expect(interceptedTls(undefined, ["h2"])).rejects.toThrow();
  });
});
