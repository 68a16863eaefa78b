import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { brotliCompressSync, deflateRawSync, deflateSync, gunzipSync, gzipSync } from "node:zlib";
import {
  createTestCa,
  type RunningServer,
  startHttpServer,
  startHttpsServer,
  type TestCa,
} from "@keyway/test-harness";
import { ProxyAgent, request, WebSocket } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestControlPlane, type TestControlPlane } from "../testing/control-plane-stack";
import { curl, testPlan, testRoute } from "../testing/fixtures";
import { openSocket, proxyAuthorization } from "../testing/raw-client";
import { startTestGateway, type TestGateway } from "../testing/test-gateway";
import { encodeFrame, frameReader, OPCODE_TEXT, webSocketAccept } from "../testing/websocket-peer";

/**
 * Secrets reflected by an upstream (SPEC §7): upstreams that echo the request they received —
 * in headers, in bodies written a few bytes at a time with pauses (so every secret arrives split
 * across chunks), compressed, as an event stream, over a WebSocket — reach real clients (curl,
 * undici) through the gateway with the injected credential masked, byte for byte the same length.
 */

const SECRETS = {
  r_bearer: "sk-echo-bearer-0123456789abcdef",
  r_query: "qry/secret+&=value-42",
  r_basic: "ghs_basicEchoSecret0987654321",
  r_header: "hdr-echo-secret-abcdefghij",
  r_ws: "ws-echo-secret-0123456789",
  r_wss: "wss-echo-secret-9876543210",
} as const;

/** Every form the gateway sent a secret in, which an echo may hand back. */
const FORMS = [
  ...Object.values(SECRETS),
  encodeURIComponent(SECRETS.r_query),
  Buffer.from(`x-access-token:${SECRETS.r_basic}`).toString("base64"),
];

let cp: TestControlPlane;
let gatewayCa: TestCa;
let upstreamCa: TestCa;
let httpUpstream: RunningServer;
let httpsUpstream: RunningServer;
let wsUpstream: WebSocketUpstream;
let wssUpstream: WebSocketUpstream;
let gw: TestGateway;
let token: string;
let dir: string;
let gatewayCaPath: string;
/** What the upstreams wrote, before the gateway: each echo body, by request path. */
const echoed = new Map<string, string>();
const acceptEncodings: (string | undefined)[] = [];
let releaseSse: () => void = () => {};

/** Writes `bytes` a few at a time with pauses, so the gateway reads them as separate chunks. */
async function writeSlowly(res: ServerResponse, bytes: Buffer, size = 7): Promise<void> {
  for (let at = 0; at < bytes.length; at += size) {
    res.write(bytes.subarray(at, at + size));
    await sleep(3);
  }
}

/** An httpbin-style upstream: answers with what it received, in several ways. */
async function echoingUpstream(req: IncomingMessage, res: ServerResponse): Promise<void> {
  for await (const _ of req);
  acceptEncodings.push(req.headers["accept-encoding"]);
  const path = new URL(req.url ?? "/", "http://upstream").pathname;
  const credential = req.headers.authorization ?? req.headers["x-api-key"] ?? "";
  const text = JSON.stringify({ url: req.url, credential, again: credential });
  echoed.set(path, text);
  const body = Buffer.from(text);
  const echoHeaders = { "x-echo-credential": credential, "x-echo-url": req.url ?? "" };
  const compressed: Record<string, Buffer> = {
    "/gzip": gzipSync(body),
    "/deflate": deflateSync(body),
    "/deflate-raw": deflateRawSync(body),
    "/br": brotliCompressSync(body),
  };
  if (path in compressed) {
    const coded = compressed[path]!;
    const coding = path === "/deflate-raw" ? "deflate" : path.slice(1);
    res.writeHead(200, {
      ...echoHeaders,
      "content-type": "application/json",
      "content-encoding": coding,
      "content-length": coded.length,
    });
    await writeSlowly(res, coded, 5);
    res.end();
    return;
  }
  if (path === "/zstd") {
    res.writeHead(200, { "content-encoding": "zstd", "content-type": "application/json" });
    res.end(body);
    return;
  }
  if (path === "/sse") {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    // The next event is written only once the client has seen the first one whole: a gateway
    // holding back any part of it (the blank line included) would leave this test hanging.
    const released = new Promise<void>((resolve) => {
      releaseSse = resolve;
    });
    await writeSlowly(res, Buffer.from(`data: ${text}\n\n`));
    await released;
    res.end("data: done\n\n");
    return;
  }
  res.writeHead(200, {
    ...echoHeaders,
    "content-type": "application/json",
    "content-length": body.length,
  });
  await writeSlowly(res, body);
  res.end();
}

function masked(text: string): string {
  let out = text;
  for (const form of FORMS) out = out.replaceAll(form, "*".repeat(Buffer.byteLength(form)));
  return out;
}

function expectClean(text: string): void {
  for (const form of FORMS) expect(text).not.toContain(form);
}

/** What the upstream echoed at `path`, checked to hold a secret (else the test proves nothing). */
function echoOf(path: string): string {
  const text = echoed.get(path);
  expect(text).toBeDefined();
  expect(FORMS.some((form) => text?.includes(form))).toBe(true);
  return text ?? "";
}

async function scrubbedCount(location: "header" | "body"): Promise<number> {
  const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  const line = new RegExp(
    `^keyway_gateway_scrubbed_total\\{location="${location}"\\} (\\d+)$`,
    "m",
  );
  return Number(line.exec(metrics)?.[1] ?? 0);
}

function proxyAgent(): ProxyAgent {
  return new ProxyAgent({
    uri: gw.proxyUrl,
    token: proxyAuthorization(token),
    requestTls: { ca: gatewayCa.certPem },
  });
}

interface WebSocketUpstream {
  url: string;
  handshakes: IncomingMessage["headers"][];
  close(): Promise<void>;
}

/**
 * A WebSocket upstream that echoes the credential it received: in a header of its 101 answer and
 * in a text frame written in two halves with a pause, then a frame ending in the credential's
 * first bytes. `/refuse` answers 401 with the credential in a gzip body instead.
 */
async function startWebSocketUpstream(ca?: TestCa): Promise<WebSocketUpstream> {
  let server: Server;
  if (ca) {
    const { certPem, keyPem } = await ca.issueLeaf({ hosts: ["127.0.0.1"] });
    server = createHttpsServer({ cert: certPem, key: keyPem });
  } else {
    server = createServer();
  }
  const handshakes: IncomingMessage["headers"][] = [];
  const sockets = new Set<Duplex>();
  server.on("upgrade", async (req: IncomingMessage, socket: Duplex) => {
    sockets.add(socket);
    socket.on("error", () => socket.destroy());
    handshakes.push(req.headers);
    const credential = req.headers.authorization ?? req.headers["x-api-key"] ?? "";
    if (req.url === "/refuse") {
      const body = gzipSync(JSON.stringify({ refused: credential }));
      const head =
        "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n" +
        `content-encoding: gzip\r\ncontent-length: ${body.length}\r\n` +
        `x-echo-credential: ${credential}\r\nconnection: close\r\n\r\n`;
      socket.end(Buffer.concat([Buffer.from(head), body]));
      return;
    }
    socket.write(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${webSocketAccept(String(req.headers["sec-websocket-key"]))}\r\n` +
        `X-Echo-Credential: ${credential}\r\n\r\n`,
    );
    const frame = encodeFrame(OPCODE_TEXT, Buffer.from(`you sent ${credential}`), false);
    const half = frame.length - 12;
    socket.write(frame.subarray(0, half));
    await sleep(20);
    socket.write(frame.subarray(half));
    // A frame ending in the credential's first bytes, then silence: it must arrive whole.
    socket.write(encodeFrame(OPCODE_TEXT, Buffer.from(`ends ${credential.slice(0, 4)}`), false));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return {
    url: `${ca ? "https" : "http"}://127.0.0.1:${address.port}`,
    handshakes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

beforeAll(async () => {
  cp = await startTestControlPlane();
  gatewayCa = await createTestCa({ commonName: "Keyway Gateway Test CA" });
  upstreamCa = await createTestCa({ commonName: "Upstream Test CA" });
  httpUpstream = await startHttpServer(echoingUpstream);
  httpsUpstream = await startHttpsServer(echoingUpstream, { ca: upstreamCa });
  wsUpstream = await startWebSocketUpstream();
  wssUpstream = await startWebSocketUpstream(upstreamCa);
  const plan = testPlan([
    testRoute("r_bearer", "bearer.example.test", httpUpstream.url, {
      type: "bearer",
      name: "authorization",
      scheme: "Bearer",
    }),
    testRoute("r_query", "query.example.test", httpUpstream.url, {
      type: "query",
      name: "api_key",
    }),
    testRoute("r_basic", "basic.example.test", httpsUpstream.url, {
      type: "basic",
      name: "authorization",
      username: "x-access-token",
    }),
    testRoute("r_header", "header.example.test", httpsUpstream.url, {
      type: "header",
      name: "x-api-key",
    }),
    testRoute("r_open", "open.example.test", httpUpstream.url, { type: "none" }),
    testRoute("r_ws", "ws.example.test", wsUpstream.url, { type: "header", name: "x-api-key" }),
    testRoute("r_wss", "wss.example.test", wssUpstream.url, {
      type: "bearer",
      name: "authorization",
      scheme: "Bearer",
    }),
  ]);
  for (const [routeId, value] of Object.entries(SECRETS))
    await cp.setCredential(routeId, { value });
  token = await cp.issueToken({ sessionId: "sess_scrub", planDigest: await cp.addPlan(plan) });
  gw = await startTestGateway({ controlPlane: cp, gatewayCa, upstreamCa });
  dir = await mkdtemp(join(tmpdir(), "keyway-gw-scrub-"));
  gatewayCaPath = join(dir, "gateway-ca.pem");
  await writeFile(gatewayCaPath, gatewayCa.certPem);
});

afterAll(async () => {
  await gw?.close();
  await Promise.all([
    cp?.close(),
    httpUpstream?.close(),
    httpsUpstream?.close(),
    wsUpstream?.close(),
    wssUpstream?.close(),
  ]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("an echoing upstream on a route with an injected credential", () => {
  it("hands curl a body and headers with the bearer secret masked (plain HTTP, split chunks)", async () => {
    const bodyBefore = await scrubbedCount("body");
    const headersBefore = await scrubbedCount("header");
    const result = await curl([
      "--proxy",
      gw.proxyUrlFor(token),
      "http://bearer.example.test/split",
    ]);
    expect(result.status).toBe(200);
    const echo = echoOf("/split");
    expect(result.body).toBe(masked(echo));
    expect(result.body.length).toBe(echo.length);
    expect(result.headers).toContain(`content-length: ${echo.length}`);
    expect(result.headers).toContain(
      `x-echo-credential: Bearer ${"*".repeat(SECRETS.r_bearer.length)}`,
    );
    expectClean(result.headers + result.body);
    // Two occurrences in the body, one in a header.
    expect(await scrubbedCount("body")).toBe(bodyBefore + 2);
    expect(await scrubbedCount("header")).toBe(headersBefore + 1);
    const line = gw.logger.lines
      .map((text) => JSON.parse(text))
      .findLast((entry) => entry.msg === "secret_scrubbed");
    expect(line).toMatchObject({
      level: "warn",
      routeId: "r_bearer",
      sessionId: "sess_scrub",
      count: 3,
      headers: 1,
      body: 2,
    });
  });

  it("masks the query form it sent (curl, plain HTTP)", async () => {
    const result = await curl([
      "--proxy",
      gw.proxyUrlFor(token),
      "http://query.example.test/split?api_key=PLACEHOLDER&q=1",
    ]);
    expect(result.status).toBe(200);
    const echo = echoOf("/split");
    expect(echo).toContain(`api_key=${encodeURIComponent(SECRETS.r_query)}`);
    expect(result.body).toBe(masked(echo));
    expectClean(result.headers + result.body);
  });

  it("masks the Basic form over an intercepted HTTPS tunnel (curl)", async () => {
    const result = await curl([
      "--proxy",
      gw.proxyUrlFor(token),
      "--cacert",
      gatewayCaPath,
      "https://basic.example.test/split",
    ]);
    expect(result.status).toBe(200);
    const echo = echoOf("/split");
    expect(echo).toContain(Buffer.from(`x-access-token:${SECRETS.r_basic}`).toString("base64"));
    expect(result.body).toBe(masked(echo));
    expect(result.body.length).toBe(echo.length);
    expectClean(result.headers + result.body);
  });

  it("masks a header credential over an intercepted HTTPS tunnel (undici)", async () => {
    const agent = proxyAgent();
    try {
      const response = await request("https://header.example.test/split", { dispatcher: agent });
      const body = await response.body.text();
      const echo = echoOf("/split");
      expect(body).toBe(masked(echo));
      expect(response.headers["content-length"]).toBe(String(echo.length));
      expect(response.headers["x-echo-credential"]).toBe("*".repeat(SECRETS.r_header.length));
      expectClean(JSON.stringify(response.headers) + body);
    } finally {
      await agent.close();
    }
  });

  it("asks for identity and delivers gzip, deflate (zlib and raw) and br answers decoded and masked", async () => {
    const agent = proxyAgent();
    try {
      for (const path of ["/gzip", "/deflate", "/deflate-raw", "/br"]) {
        const response = await request(`https://header.example.test${path}`, {
          dispatcher: agent,
          headers: { "accept-encoding": "gzip, deflate, br" },
        });
        const body = await response.body.text();
        expect(acceptEncodings.at(-1), path).toBe("identity");
        expect(response.statusCode, path).toBe(200);
        expect(response.headers["content-encoding"], path).toBeUndefined();
        expect(body, path).toBe(masked(echoOf(path)));
        expectClean(body);
      }
    } finally {
      await agent.close();
    }
  });

  it("refuses an encoding it cannot decode with 502 upstream_encoding_unsupported", async () => {
    const result = await curl([
      "--proxy",
      gw.proxyUrlFor(token),
      "http://bearer.example.test/zstd",
    ]);
    expect(result.status).toBe(502);
    expect(JSON.parse(result.body)).toMatchObject({
      error: { code: "upstream_encoding_unsupported" },
    });
    expectClean(result.body);
  });

  it("streams an event stream event by event, masked, holding back nothing past an event", async () => {
    const agent = proxyAgent();
    try {
      const response = await request("https://header.example.test/sse", { dispatcher: agent });
      let text = "";
      for await (const chunk of response.body) {
        text += String(chunk);
        if (text.includes("\n\n") && !text.includes("done")) {
          // The whole first event arrived while the upstream waits: let it finish.
          expect(text).toBe(`data: ${masked(echoOf("/sse"))}\n\n`);
          releaseSse();
        }
      }
      expect(text).toBe(`data: ${masked(echoOf("/sse"))}\n\ndata: done\n\n`);
    } finally {
      await agent.close();
    }
  });

  it("leaves routes without a credential alone: compression passes through", async () => {
    const agent = new ProxyAgent({
      uri: gw.proxyUrl,
      token: proxyAuthorization(token),
      proxyTunnel: false,
    });
    try {
      const response = await request("http://open.example.test/gzip", {
        dispatcher: agent,
        headers: { "accept-encoding": "gzip" },
      });
      const bytes = Buffer.from(await response.body.arrayBuffer());
      expect(acceptEncodings.at(-1)).toBe("gzip");
      expect(response.headers["content-encoding"]).toBe("gzip");
      expect(gunzipSync(bytes).toString()).toBe(echoed.get("/gzip"));
    } finally {
      await agent.close();
    }
  });

  it("never writes a secret to the log", () => {
    expect(gw.logger.lines.length).toBeGreaterThan(0);
    for (const line of gw.logger.lines) expectClean(line);
  });
});

describe("an echoing WebSocket upstream on a route with an injected credential", () => {
  it("masks the credential in the 101 answer and in a frame split across writes (ws://)", async () => {
    const socket: Socket = await openSocket(gw.proxyPort);
    socket.on("error", () => {});
    const key = randomBytes(16).toString("base64");
    const head = await new Promise<{ head: string; rest: Buffer }>((resolve) => {
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
      socket.write(
        "GET http://ws.example.test/chat HTTP/1.1\r\nHost: ws.example.test\r\n" +
          `Proxy-Authorization: ${proxyAuthorization(token)}\r\n` +
          "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
          "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
      );
    });
    expect(head.head).toMatch(/^HTTP\/1\.1 101 /);
    expect(head.head).toContain(`X-Echo-Credential: ${"*".repeat(SECRETS.r_ws.length)}`);
    const frames = frameReader(socket, head.rest);
    expect((await frames.next())?.payload.toString()).toBe(
      `you sent ${"*".repeat(SECRETS.r_ws.length)}`,
    );
    // Not held back waiting for a next frame that never comes.
    expect((await frames.next())?.payload.toString()).toBe(`ends ${SECRETS.r_ws.slice(0, 4)}`);
    socket.destroy();
    const upgrade = wsUpstream.handshakes.at(-1);
    expect(upgrade?.["x-api-key"]).toBe(SECRETS.r_ws);
    // A compressed frame would hide the secret: the offer is not forwarded.
    expect(upgrade?.["sec-websocket-extensions"]).toBeUndefined();
  });

  it("masks the credential in frames over an intercepted TLS tunnel (undici WebSocket)", async () => {
    const dispatcher = proxyAgent();
    try {
      const socket = new WebSocket("wss://wss.example.test/chat", { dispatcher });
      const message = await new Promise<string>((resolve, reject) => {
        socket.addEventListener("message", (event) => resolve(String(event.data)));
        socket.addEventListener("error", () => reject(new Error("websocket error")));
      });
      expect(message).toBe(`you sent Bearer ${"*".repeat(SECRETS.r_wss.length)}`);
      socket.close();
    } finally {
      await dispatcher.close();
    }
    expect(wssUpstream.handshakes.at(-1)?.authorization).toBe(`Bearer ${SECRETS.r_wss}`);
  });

  it("masks a refused handshake's answer, decoded from gzip", async () => {
    const result = await curl([
      "--proxy",
      gw.proxyUrlFor(token),
      "-H",
      "Upgrade: websocket",
      "-H",
      "Connection: Upgrade",
      "-H",
      `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}`,
      "-H",
      "Sec-WebSocket-Version: 13",
      "http://ws.example.test/refuse",
    ]);
    expect(result.status, result.stderr).toBe(401);
    expect(JSON.parse(result.body)).toEqual({ refused: "*".repeat(SECRETS.r_ws.length) });
    expect(result.headers).toContain(`x-echo-credential: ${"*".repeat(SECRETS.r_ws.length)}`);
    expectClean(result.headers + result.body);
  });
});
