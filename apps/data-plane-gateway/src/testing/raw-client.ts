import { connect as connectTcp, type Socket } from "node:net";
import { connect as connectTls, type TLSSocket } from "node:tls";

/** Hand-written HTTP over raw sockets, for the shapes real clients refuse to send (tests only). */

export function proxyAuthorization(sessionToken: string): string {
  return `Basic ${Buffer.from(`session:${sessionToken}`).toString("base64")}`;
}

/** Opens a TCP connection to the proxy. */
export function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp(port, "127.0.0.1", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Sends bytes and collects everything the server answers until it closes or goes quiet. */
export function exchangeRaw(
  socket: Socket | TLSSocket,
  bytes: string,
  quietMs = 1_000,
): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    let text = "";
    let timer: NodeJS.Timeout;
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      socket.off("data", onData);
      resolve({ text, closed });
    };
    const onData = (chunk: Buffer) => {
      text += chunk.toString("latin1");
      clearTimeout(timer);
      timer = setTimeout(() => finish(false), quietMs);
    };
    timer = setTimeout(() => finish(false), quietMs);
    socket.on("data", onData);
    socket.once("close", () => finish(true));
    socket.once("error", () => {});
    socket.write(bytes);
  });
}

/**
 * Sends bytes and resolves with the response head (through its blank line), or with what arrived
 * before the connection closed. The socket is left paused, so what follows the head stays readable.
 */
export function exchangeHead(socket: Socket | TLSSocket, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    const onData = (chunk: Buffer) => {
      text += chunk.toString("latin1");
      if (text.includes("\r\n\r\n")) {
        socket.off("data", onData);
        socket.pause();
        resolve(text);
      }
    };
    socket.on("data", onData);
    socket.once("close", () => resolve(text));
    socket.once("error", () => {});
    socket.write(bytes);
  });
}

/** `CONNECT authority` and, on 200, TLS to `servername` trusting `ca`. */
export async function openTunnel(options: {
  port: number;
  authority: string;
  proxyAuthorization?: string;
  tls?: { servername: string; ca: string };
}): Promise<{ status: number; head: string; socket: Socket | TLSSocket }> {
  const socket = await openSocket(options.port);
  const auth = options.proxyAuthorization
    ? `Proxy-Authorization: ${options.proxyAuthorization}\r\n`
    : "";
  const head = await exchangeHead(
    socket,
    `CONNECT ${options.authority} HTTP/1.1\r\nHost: ${options.authority}\r\n${auth}\r\n`,
  );
  const status = Number(/^HTTP\/1\.1 ([0-9]{3})/.exec(head)?.[1] ?? 0);
  if (status !== 200 || options.tls === undefined) return { status, head, socket };
  const { servername, ca } = options.tls;
  const secure = await new Promise<TLSSocket>((resolve, reject) => {
    const tls = connectTls({ socket, servername, ca, ALPNProtocols: ["http/1.1"] }, () =>
      resolve(tls),
    );
    tls.once("error", reject);
  });
  return { status, head, socket: secure };
}
