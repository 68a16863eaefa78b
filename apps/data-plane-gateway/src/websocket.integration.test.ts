import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import {
  createTestCa,
  type RunningServer,
  startHttpServer,
  type TestCa,
} from "@keyway/test-harness";
import { ProxyAgent, WebSocket } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestControlPlane, type TestControlPlane } from "./testing/control-plane-stack";
import { type ReceivedRequest, recordingUpstream, testPlan, testRoute } from "./testing/fixtures";
import { openSocket, proxyAuthorization } from "./testing/raw-client";
import { startTestGateway, type TestGateway } from "./testing/test-gateway";
import {
  encodeFrame,
  frameReader,
  OPCODE_CLOSE,
  OPCODE_TEXT,
  startWebSocketEchoServer,
  type WebSocketEchoServer,
  webSocketAccept,
} from "./testing/websocket-peer";

/** WebSocket upgrades on routes (SPEC §7): real sockets, a real RFC 6455 echo upstream. */

const WSS_SECRET = "wss-secret-0123456789";
const WS_SECRET = "ws-header-secret-abc";

let cp: TestControlPlane;
let gatewayCa: TestCa;
let upstreamCa: TestCa;
let wssUpstream: WebSocketEchoServer;
let wsUpstream: WebSocketEchoServer;
let silent: RunningServer;
let plainUpstream: RunningServer;
let gw: TestGateway;
let token: string;
const received: ReceivedRequest[] = [];

beforeAll(async () => {
  cp = await startTestControlPlane();
  gatewayCa = await createTestCa({ commonName: "Keyway Gateway Test CA" });
  upstreamCa = await createTestCa({ commonName: "Upstream Test CA" });
  wssUpstream = await startWebSocketEchoServer({ ca: upstreamCa });
  wsUpstream = await startWebSocketEchoServer();
  // Accepts the handshake request and never answers it.
  silent = await startHttpServer(() => new Promise<void>(() => {}));
  plainUpstream = await startHttpServer(recordingUpstream(received));
  const plan = testPlan([
    testRoute("r_wss", "wss.example.test", wssUpstream.url, {
      type: "bearer",
      name: "authorization",
      scheme: "Bearer",
    }),
    testRoute(
      "r_ws",
      "ws.example.test",
      wsUpstream.url,
      { type: "header", name: "x-api-key" },
      { pathPrefixes: ["/echo", "/refuse"] },
    ),
    testRoute("r_silent", "silent.example.test", silent.url, { type: "none" }),
    testRoute("r_plain", "plain.example.test", plainUpstream.url, { type: "none" }),
  ]);
  await cp.setCredential("r_wss", { value: WSS_SECRET });
  await cp.setCredential("r_ws", { value: WS_SECRET });
  token = await cp.issueToken({ sessionId: "sess_ws", planDigest: await cp.addPlan(plan) });
  gw = await startTestGateway({
    controlPlane: cp,
    gatewayCa,
    upstreamCa,
    upstream: { headersTimeoutMs: 1_000 },
    // Lets the unmanaged test reach the loopback echo server directly.
    egress: { defaultPolicy: "allow", allowPrivateNetworks: true },
  });
});

afterAll(async () => {
  await gw?.close();
  await Promise.all([
    cp?.close(),
    wssUpstream?.close(),
    wsUpstream?.close(),
    silent?.close(),
    plainUpstream?.close(),
  ]);
});

/** Reads a response head; what follows it stays available to the next reader. */
function readHead(socket: Socket | TLSSocket): Promise<{ head: string; rest: Buffer }> {
  return new Promise((resolve) => {
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      socket.pause();
      resolve({
        head: buffered.subarray(0, end).toString("latin1"),
        rest: buffered.subarray(end + 4),
      });
    };
    socket.on("data", onData);
    socket.once("close", () =>
      resolve({ head: buffered.toString("latin1"), rest: Buffer.alloc(0) }),
    );
  });
}

function readToClose(socket: Socket | TLSSocket, initial: Buffer): Promise<string> {
  return new Promise((resolve) => {
    let text = initial.toString("latin1");
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1");
    });
    socket.once("close", () => resolve(text));
    socket.resume();
  });
}

/** A hand-written opening handshake in absolute form on the proxy port. */
async function handshake(url: string, extraHeaders = "") {
  const socket = await openSocket(gw.proxyPort);
  socket.on("error", () => {});
  const key = randomBytes(16).toString("base64");
  const authority = new URL(url).host;
  const head = readHead(socket);
  socket.write(
    `GET ${url} HTTP/1.1\r\nHost: ${authority}\r\n` +
      `Proxy-Authorization: ${proxyAuthorization(token)}\r\n` +
      "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`,
  );
  return { socket, key, ...(await head) };
}

describe("WebSocket through a route", () => {
  it("echoes over an intercepted TLS tunnel with the credential injected (undici client)", async () => {
    const dispatcher = new ProxyAgent({
      uri: gw.proxyUrl,
      token: `Basic ${Buffer.from(`session:${token}`).toString("base64")}`,
      requestTls: { ca: gatewayCa.certPem },
    });
    try {
      const socket = new WebSocket("wss://wss.example.test/chat", {
        dispatcher,
        headers: { authorization: "Bearer sandbox-placeholder" },
      });
      const echoed = await new Promise<string>((resolve, reject) => {
        socket.addEventListener("open", () => socket.send("hello through the gateway"));
        socket.addEventListener("message", (event) => resolve(String(event.data)));
        socket.addEventListener("error", () => reject(new Error("websocket error")));
      });
      expect(echoed).toBe("hello through the gateway");
      socket.close();
    } finally {
      await dispatcher.close();
    }
    const upgrade = wssUpstream.handshakes.at(-1);
    expect(upgrade?.authorization).toBe(`Bearer ${WSS_SECRET}`);
    expect(upgrade?.upgrade).toBe("websocket");
    expect(upgrade?.["proxy-authorization"]).toBeUndefined();
    expect(upgrade?.host).toBe(new URL(wssUpstream.url).host);
  });

  it("echoes ws:// through a plain CONNECT tunnel (undici client)", async () => {
    const dispatcher = new ProxyAgent({
      uri: gw.proxyUrl,
      token: `Basic ${Buffer.from(`session:${token}`).toString("base64")}`,
    });
    try {
      const socket = new WebSocket("ws://ws.example.test/echo", { dispatcher });
      const echoed = await new Promise<string>((resolve, reject) => {
        socket.addEventListener("open", () => socket.send("plain tunnel"));
        socket.addEventListener("message", (event) => resolve(String(event.data)));
        socket.addEventListener("error", () => reject(new Error("websocket error")));
      });
      expect(echoed).toBe("plain tunnel");
      socket.close();
    } finally {
      await dispatcher.close();
    }
    expect(wsUpstream.handshakes.at(-1)?.["x-api-key"]).toBe(WS_SECRET);
  });

  it("echoes absolute-form ws:// on the proxy port (hand-written RFC 6455 client)", async () => {
    const { socket, key, head, rest } = await handshake(
      "http://ws.example.test/echo",
      "X-Api-Key: sandbox-placeholder\r\n",
    );
    expect(head).toMatch(/^HTTP\/1\.1 101 /);
    expect(head.toLowerCase()).toContain(
      `sec-websocket-accept: ${webSocketAccept(key).toLowerCase()}`,
    );
    const frames = frameReader(socket, rest);
    socket.write(encodeFrame(OPCODE_TEXT, Buffer.from("ping 1"), true));
    socket.write(encodeFrame(OPCODE_TEXT, Buffer.from("x".repeat(5_000)), true));
    expect((await frames.next())?.payload.toString()).toBe("ping 1");
    expect((await frames.next())?.payload.length).toBe(5_000);
    socket.write(encodeFrame(OPCODE_CLOSE, Buffer.from([0x03, 0xe8]), true));
    expect((await frames.next())?.opcode).toBe(OPCODE_CLOSE);
    await new Promise((resolve) => socket.once("close", resolve));

    const upgrade = wsUpstream.handshakes.at(-1);
    expect(upgrade?.["x-api-key"]).toBe(WS_SECRET);
    expect(upgrade?.["proxy-authorization"]).toBeUndefined();
    // Recorded once both sides of the relay have closed, which may trail the client's close.
    let metrics = "";
    const counted = `keyway_gateway_requests_total{upstream="${wsUpstream.url}",status="101"}`;
    for (let i = 0; i < 50 && !metrics.includes(counted); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    }
    const line = metrics.split("\n").find((l) => l.startsWith(`${counted} `));
    expect(Number(line?.split(" ")[1])).toBeGreaterThan(0);
  });

  it("relays a refused handshake as an ordinary response", async () => {
    const { socket, head, rest } = await handshake("http://ws.example.test/refuse");
    expect(head).toMatch(/^HTTP\/1\.1 403 /);
    const body = await readToClose(socket, rest);
    expect(JSON.parse(body)).toEqual({ refused: true });
  });

  it("refuses a handshake outside the route's paths with 403 policy_denied", async () => {
    const before = wsUpstream.handshakes.length;
    const { socket, head, rest } = await handshake("http://ws.example.test/other");
    expect(head).toMatch(/^HTTP\/1\.1 403 /);
    expect(JSON.parse(await readToClose(socket, rest)).error.code).toBe("policy_denied");
    expect(wsUpstream.handshakes.length).toBe(before);
  });

  it("answers 407 to a handshake without a session token", async () => {
    const socket = await openSocket(gw.proxyPort);
    const head = readHead(socket);
    socket.write(
      "GET http://ws.example.test/echo HTTP/1.1\r\nHost: ws.example.test\r\n" +
        "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    const { head: text, rest } = await head;
    expect(text).toMatch(/^HTTP\/1\.1 407 /);
    expect(text.toLowerCase()).toContain("proxy-authenticate: basic");
    expect(JSON.parse(await readToClose(socket, rest)).error.code).toBe("proxy_auth_required");
  });

  it("answers 504 upstream_timeout when the upstream does not answer the handshake", async () => {
    const { socket, head, rest } = await handshake("http://silent.example.test/");
    expect(head).toMatch(/^HTTP\/1\.1 504 /);
    expect(JSON.parse(await readToClose(socket, rest)).error.code).toBe("upstream_timeout");
  });

  it("answers other Upgrade requests as plain requests, without the upgrade", async () => {
    const socket = await openSocket(gw.proxyPort);
    const head = readHead(socket);
    socket.write(
      "GET http://plain.example.test/h2c HTTP/1.1\r\nHost: plain.example.test\r\n" +
        `Proxy-Authorization: ${proxyAuthorization(token)}\r\n` +
        "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    );
    const { head: text, rest } = await head;
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(JSON.parse(await readToClose(socket, rest))).toMatchObject({ ok: true });
    const last = received.at(-1);
    expect(last?.url).toBe("/h2c");
    expect(last?.headers.upgrade).toBeUndefined();
    expect(last?.headers["http2-settings"]).toBeUndefined();
  });

  it("relays ws:// to an allowed unmanaged host without injecting anything", async () => {
    const { socket, head, rest } = await handshake(`${wsUpstream.url}/echo`, "X-Api-Key: own\r\n");
    expect(head).toMatch(/^HTTP\/1\.1 101 /);
    const frames = frameReader(socket, rest);
    socket.write(encodeFrame(OPCODE_TEXT, Buffer.from("unmanaged"), true));
    expect((await frames.next())?.payload.toString()).toBe("unmanaged");
    socket.destroy();
    const upgrade = wsUpstream.handshakes.at(-1);
    expect(upgrade?.["x-api-key"]).toBe("own");
    expect(upgrade?.["proxy-authorization"]).toBeUndefined();
  });

  it("closes an open WebSocket when its session is revoked", async () => {
    const sessionToken = await cp.issueToken({
      sessionId: "sess_ws_revoked",
      planDigest: await cp.addPlan(
        testPlan([testRoute("r_ws2", "ws.example.test", wsUpstream.url, { type: "none" })]),
      ),
    });
    const socket = await openSocket(gw.proxyPort);
    socket.on("error", () => {});
    const head = readHead(socket);
    socket.write(
      "GET http://ws.example.test/echo HTTP/1.1\r\nHost: ws.example.test\r\n" +
        `Proxy-Authorization: ${proxyAuthorization(sessionToken)}\r\n` +
        "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    const { head: text, rest } = await head;
    expect(text).toMatch(/^HTTP\/1\.1 101 /);
    const frames = frameReader(socket, rest);
    socket.write(encodeFrame(OPCODE_TEXT, Buffer.from("before"), true));
    expect((await frames.next())?.payload.toString()).toBe("before");
    const closed = new Promise((resolve) => socket.once("close", resolve));
    await cp.revokeSession("sess_ws_revoked");
    await closed;
  });
});
