import { createHash } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { TestCa } from "@keyway/test-harness";

/**
 * A minimal RFC 6455 peer for tests: an echo server (plain or TLS) that records each opening
 * handshake it receives, and the frame codec a hand-written client needs. Text and binary
 * frames up to 64 KiB, no fragmentation, no extensions.
 */

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

export const OPCODE_TEXT = 0x1;
export const OPCODE_CLOSE = 0x8;

export function webSocketAccept(key: string): string {
  return createHash("sha1")
    .update(key + GUID)
    .digest("base64");
}

/** One frame, FIN set; client frames must be masked (RFC 6455 §5.3). */
export function encodeFrame(opcode: number, payload: Buffer, masked: boolean): Buffer {
  if (payload.length > 0xffff) throw new RangeError("test frames stay under 64 KiB");
  const lengthBytes = payload.length < 126 ? 0 : 2;
  const header = Buffer.alloc(2 + lengthBytes + (masked ? 4 : 0));
  header[0] = 0x80 | opcode;
  header[1] = (masked ? 0x80 : 0) | (lengthBytes === 0 ? payload.length : 126);
  if (lengthBytes === 2) header.writeUInt16BE(payload.length, 2);
  if (!masked) return Buffer.concat([header, payload]);
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  mask.copy(header, 2 + lengthBytes);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] = body[i]! ^ mask[i % 4]!;
  return Buffer.concat([header, body]);
}

export interface Frame {
  opcode: number;
  payload: Buffer;
}

/** Frames complete in `buffer`, and the bytes left over. */
export function decodeFrames(buffer: Buffer): { frames: Frame[]; rest: Buffer } {
  const frames: Frame[] = [];
  let offset = 0;
  while (buffer.length - offset >= 2) {
    const opcode = buffer[offset]! & 0x0f;
    const masked = (buffer[offset + 1]! & 0x80) !== 0;
    let length = buffer[offset + 1]! & 0x7f;
    let cursor = offset + 2;
    if (length === 126) {
      if (buffer.length < cursor + 2) break;
      length = buffer.readUInt16BE(cursor);
      cursor += 2;
    } else if (length === 127) {
      throw new RangeError("test frames stay under 64 KiB");
    }
    const maskStart = cursor;
    if (masked) cursor += 4;
    if (buffer.length < cursor + length) break;
    const payload = Buffer.from(buffer.subarray(cursor, cursor + length));
    if (masked) {
      for (let i = 0; i < payload.length; i++) {
        payload[i] = payload[i]! ^ buffer[maskStart + (i % 4)]!;
      }
    }
    frames.push({ opcode, payload });
    offset = cursor + length;
  }
  return { frames, rest: buffer.subarray(offset) };
}

/** Reads frames from a socket as they arrive. */
export function frameReader(socket: Duplex, initial: Buffer = Buffer.alloc(0)) {
  let pending = initial;
  const frames: Frame[] = [];
  const waiters: Array<() => void> = [];
  const take = (chunk: Buffer) => {
    const decoded = decodeFrames(Buffer.concat([pending, chunk]));
    pending = decoded.rest;
    frames.push(...decoded.frames);
    for (const wake of waiters.splice(0)) wake();
  };
  socket.on("data", take);
  // A reader that paused the socket after the handshake hands the flow over here.
  socket.resume();
  socket.once("close", () => {
    for (const wake of waiters.splice(0)) wake();
  });
  if (initial.length > 0) take(Buffer.alloc(0));
  return {
    /** The next frame, or null when the socket closes first. */
    async next(): Promise<Frame | null> {
      while (frames.length === 0) {
        if (socket.destroyed) return null;
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
      return frames.shift() ?? null;
    },
  };
}

export interface WebSocketEchoServer {
  /** `http://127.0.0.1:<port>` or `https://…`. */
  url: string;
  /** The headers of every opening handshake received, in order. */
  handshakes: IncomingHttpHeaders[];
  close(): Promise<void>;
}

/**
 * Echoes text and binary frames back unmasked and answers a close frame with one. The path
 * `/refuse` answers the handshake with 403 and a JSON body instead of upgrading.
 */
export async function startWebSocketEchoServer(
  options: { ca?: TestCa } = {},
): Promise<WebSocketEchoServer> {
  let server: Server;
  if (options.ca) {
    const { certPem, keyPem } = await options.ca.issueLeaf({ hosts: ["127.0.0.1", "localhost"] });
    server = createHttpsServer({ cert: certPem, key: keyPem });
  } else {
    server = createServer();
  }
  const handshakes: IncomingHttpHeaders[] = [];
  const sockets = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("request", (_req, res) => {
    res.writeHead(426, { "content-type": "text/plain" });
    res.end("websocket only");
  });
  server.on("upgrade", (req, socket: Duplex, head: Buffer) => {
    socket.on("error", () => socket.destroy());
    handshakes.push(req.headers);
    const key = req.headers["sec-websocket-key"];
    if (req.url === "/refuse" || typeof key !== "string") {
      const body = JSON.stringify({ refused: true });
      socket.end(
        `HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
      );
      return;
    }
    socket.write(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${webSocketAccept(key)}\r\n\r\n`,
    );
    let pending: Buffer = Buffer.alloc(0);
    const echo = (chunk: Buffer) => {
      const decoded = decodeFrames(Buffer.concat([pending, chunk]));
      pending = decoded.rest;
      for (const frame of decoded.frames) {
        if (frame.opcode === OPCODE_CLOSE) {
          socket.end(encodeFrame(OPCODE_CLOSE, frame.payload, false));
          return;
        }
        socket.write(encodeFrame(frame.opcode, frame.payload, false));
      }
    };
    if (head.length > 0) echo(head);
    socket.on("data", echo);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return {
    url: `${options.ca ? "https" : "http"}://127.0.0.1:${address.port}`,
    handshakes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
