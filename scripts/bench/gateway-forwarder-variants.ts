/**
 * Throw-away prototypes for `gateway-forwarder-ceilings.ts`: the plain Node forwarder of
 * `gateway-naive-forwarder.ts` (node:http server, credential header injected, response relayed,
 * nothing else) with its upstream leg written in different ways, to measure what each upstream
 * client costs per keep-alive request. GET without a body only (what the ceiling run sends).
 *
 *   node scripts/bench/gateway-forwarder-variants.ts <variant> <port> <upstreamOrigin> <secret>
 *
 * Variants: pool-request (the naive forwarder), pool-dispatch (undici Pool, dispatch handler),
 * client-per-socket (one undici Client per sandbox connection, dispatch), http-agent (node:http
 * keep-alive Agent), raw (keep-alive `net` sockets, request head written as one string, response
 * framed by Content-Length in a few lines of JavaScript).
 */
import { createServer, Agent as HttpAgent, type IncomingMessage, request } from "node:http";
import { connect, type Socket } from "node:net";
import { Client, type Dispatcher, Pool } from "undici";

const [variant, port, upstream, secret] = process.argv.slice(2);
if (!variant || !port || !upstream || !secret) {
  throw new Error(
    "usage: gateway-forwarder-variants.ts <variant> <port> <upstreamOrigin> <secret>",
  );
}
const upstreamOrigin: string = upstream;
const authorization = `Bearer ${secret}`;
const upstreamUrl = new URL(upstream);
const upstreamHost = upstreamUrl.host;

type Handler = (req: IncomingMessage, res: import("node:http").ServerResponse) => void;

function flatRequestHeaders(req: IncomingMessage): string[] {
  const raw = req.rawHeaders;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (lower === "host" || lower === "connection" || lower === "proxy-authorization") continue;
    out.push(name, raw[i + 1] as string);
  }
  out.push("host", upstreamHost, "authorization", authorization);
  return out;
}

const HOP = new Set(["connection", "keep-alive", "transfer-encoding"]);

class Relay implements Dispatcher.DispatchHandler {
  constructor(private readonly res: import("node:http").ServerResponse) {}
  onRequestStart(): void {}
  onResponseStart(
    _c: Dispatcher.DispatchController,
    status: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    const flat: string[] = [];
    for (const name in headers) {
      if (HOP.has(name)) continue;
      const v = headers[name];
      if (typeof v === "string") flat.push(name, v);
    }
    this.res.writeHead(status, flat);
  }
  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.res.write(chunk);
  }
  onResponseEnd(): void {
    this.res.end();
  }
  onResponseError(): void {
    if (!this.res.headersSent) this.res.writeHead(502);
    this.res.end();
  }
}

function undiciDispatch(pick: (req: IncomingMessage) => Dispatcher): Handler {
  return (req, res) => {
    pick(req).dispatch(
      {
        origin: upstreamOrigin,
        method: req.method ?? "GET",
        path: req.url ?? "/",
        headers: flatRequestHeaders(req),
        body: null,
        idempotent: false,
      },
      new Relay(res),
    );
  };
}

function handlerFor(name: string): Handler {
  if (name === "pool-request") {
    const pool = new Pool(upstreamOrigin, { keepAliveTimeout: 60_000 });
    return (req, res) => {
      const headers = { ...req.headers, host: upstreamHost, authorization };
      delete headers.connection;
      pool.request({ method: req.method ?? "GET", path: req.url ?? "/", headers, body: null }).then(
        ({ statusCode, headers: h, body }) => {
          res.writeHead(statusCode, h);
          body.pipe(res);
        },
        () => {
          res.writeHead(502);
          res.end();
        },
      );
    };
  }
  if (name === "pool-dispatch") {
    const pool = new Pool(upstreamOrigin, { keepAliveTimeout: 60_000 });
    return undiciDispatch(() => pool);
  }
  if (name === "client-per-socket") {
    const clients = new WeakMap<Socket, Client>();
    return undiciDispatch((req) => {
      let client = clients.get(req.socket);
      if (client === undefined) {
        client = new Client(upstreamOrigin, { keepAliveTimeout: 60_000 });
        clients.set(req.socket, client);
        const c = client;
        req.socket.once("close", () => void c.close());
      }
      return client;
    });
  }
  if (name === "http-agent") {
    const agent = new HttpAgent({ keepAlive: true, keepAliveMsecs: 60_000, maxSockets: 256 });
    const hostname = upstreamUrl.hostname;
    const upstreamPort = Number(upstreamUrl.port);
    return (req, res) => {
      const out = request(
        {
          agent,
          hostname,
          port: upstreamPort,
          method: req.method,
          path: req.url,
          headers: flatRequestHeaders(req),
          setHost: false,
        },
        (up) => {
          const flat: string[] = [];
          const raw = up.rawHeaders;
          for (let i = 0; i < raw.length; i += 2) {
            const n = raw[i] as string;
            if (HOP.has(n.toLowerCase())) continue;
            flat.push(n, raw[i + 1] as string);
          }
          res.writeHead(up.statusCode ?? 502, flat);
          up.pipe(res);
        },
      );
      out.on("error", () => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
      out.end();
    };
  }
  if (name === "raw") return rawHandler();
  throw new Error(`unknown variant ${name}`);
}

/** One keep-alive connection; one exchange at a time; Content-Length framed responses only. */
class RawConnection {
  buffered: Buffer | null = null;
  res: import("node:http").ServerResponse | null = null;
  remaining = -1;
  constructor(
    readonly socket: Socket,
    private readonly release: (c: RawConnection) => void,
  ) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", () => this.fail());
    socket.on("close", () => this.fail());
  }
  send(head: string, res: import("node:http").ServerResponse): void {
    this.res = res;
    this.remaining = -1;
    this.socket.write(head, "latin1");
  }
  fail(): void {
    const res = this.res;
    this.res = null;
    if (res && !res.writableEnded) {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    }
  }
  onData(chunk: Buffer): void {
    const res = this.res;
    if (res === null) {
      this.socket.destroy();
      return;
    }
    if (this.remaining < 0) {
      const data = this.buffered ? Buffer.concat([this.buffered, chunk]) : chunk;
      const end = data.indexOf("\r\n\r\n");
      if (end < 0) {
        this.buffered = data;
        return;
      }
      this.buffered = null;
      const lines = data.toString("latin1", 0, end).split("\r\n");
      const status = Number((lines[0] as string).slice(9, 12));
      const flat: string[] = [];
      let length = 0;
      for (let i = 1; i < lines.length; i++) {
        const line = lines[i] as string;
        const colon = line.indexOf(":");
        const name = line.slice(0, colon);
        const value = line.slice(colon + 1).trim();
        const lower = name.toLowerCase();
        if (lower === "content-length") length = Number(value);
        if (HOP.has(lower)) continue;
        flat.push(name, value);
      }
      res.writeHead(status, flat);
      this.remaining = length;
      chunk = data.subarray(end + 4);
    }
    if (chunk.length > 0) {
      this.remaining -= chunk.length;
      res.write(chunk);
    }
    if (this.remaining === 0) {
      this.res = null;
      res.end();
      this.release(this);
    }
  }
}

function rawHandler(): Handler {
  const idle: RawConnection[] = [];
  const hostname = upstreamUrl.hostname;
  const upstreamPort = Number(upstreamUrl.port);
  const release = (c: RawConnection) => idle.push(c);
  return (req, res) => {
    let head = `${req.method} ${req.url} HTTP/1.1\r\n`;
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const lower = (raw[i] as string).toLowerCase();
      if (lower === "host" || lower === "connection" || lower === "proxy-authorization") continue;
      head += `${raw[i]}: ${raw[i + 1]}\r\n`;
    }
    head += `host: ${upstreamHost}\r\nauthorization: ${authorization}\r\n\r\n`;
    const c = idle.pop() ?? new RawConnection(connect(upstreamPort, hostname), release);
    c.send(head, res);
  };
}

const handler = handlerFor(variant);
const server = createServer({ noDelay: true, keepAliveTimeout: 60_000 }, handler);
server.listen(Number(port), "127.0.0.1", () => process.stdout.write("ready\n"));
process.once("SIGTERM", () => process.exit(0));
