import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP proxy on loopback in front of a server, for outage tests: it can stop forwarding (the
 * server looks frozen or black-holed: connections are accepted, nothing is answered), refuse
 * connections (the server is down), and — for PostgreSQL — hold a client's COMMIT on its way to
 * the server, as a server frozen just as the COMMIT arrives would leave it.
 */
export interface TcpProxy {
  host: string;
  port: number;
  /** Holds every byte in both directions, and those of new connections, until `thaw()`. */
  freeze(): void;
  /** Delivers what was held, in order, and forwards again. */
  thaw(): void;
  /** Stops listening and resets every connection: connecting is refused until `accept()`. */
  refuse(): Promise<void>;
  /** Listens again, on the same port. */
  accept(): Promise<void>;
  /**
   * `protocol: "postgres"` only. The next COMMIT any client sends is held, with everything that
   * client sends after it, until `releaseCommit()`; resolves once a COMMIT is held.
   */
  holdNextCommit(): Promise<void>;
  releaseCommit(): void;
  close(): Promise<void>;
}

export interface TcpProxyOptions {
  /** Parse the client's PostgreSQL messages (needed by `holdNextCommit`). */
  protocol?: "postgres";
}

const HOST = "127.0.0.1";

/** One direction of a proxied connection: writes to `to`, or holds while the proxy is frozen. */
class Direction {
  readonly held: Buffer[] = [];
  constructor(private readonly to: Socket) {}

  send(chunk: Buffer, frozen: boolean): void {
    if (frozen || this.held.length > 0) this.held.push(chunk);
    else this.to.write(chunk);
  }

  flush(): void {
    for (const chunk of this.held.splice(0)) this.to.write(chunk);
  }
}

/**
 * Splits the client's byte stream into PostgreSQL frontend messages and tells COMMITs apart,
 * including those executed through a statement prepared earlier on the connection.
 */
class PostgresClientStream {
  #pending = Buffer.alloc(0);
  #untypedLeft = 1;
  readonly #statements = new Map<string, string>();

  /** Complete messages in `chunk` (with what was left over before), each marked commit or not. */
  push(chunk: Buffer): { message: Buffer; commit: boolean }[] {
    this.#pending = Buffer.concat([this.#pending, chunk]);
    const messages: { message: Buffer; commit: boolean }[] = [];
    for (;;) {
      const untyped = this.#untypedLeft > 0;
      const header = untyped ? 4 : 5;
      if (this.#pending.length < header) break;
      const length = this.#pending.readInt32BE(untyped ? 0 : 1) + (untyped ? 0 : 1);
      if (this.#pending.length < length) break;
      const message = this.#pending.subarray(0, length);
      this.#pending = this.#pending.subarray(length);
      if (untyped) {
        // An SSL or GSS encryption request is followed by another untyped startup message.
        const code = message.readInt32BE(4);
        if (code !== 80877103 && code !== 80877104) this.#untypedLeft--;
        messages.push({ message, commit: false });
        continue;
      }
      messages.push({ message, commit: this.#isCommit(message) });
    }
    return messages;
  }

  #isCommit(message: Buffer): boolean {
    const type = String.fromCharCode(message[0] ?? 0);
    const strings = cStrings(message.subarray(5), 2);
    const isCommitText = (text: string | undefined) => /^\s*commit\b/i.test(text ?? "");
    if (type === "Q") return isCommitText(strings[0]);
    if (type === "P") {
      const [name = "", query = ""] = strings;
      this.#statements.set(name, query);
      return isCommitText(query);
    }
    if (type === "B") return isCommitText(this.#statements.get(strings[1] ?? ""));
    return false;
  }
}

function cStrings(body: Buffer, count: number): string[] {
  const strings: string[] = [];
  let start = 0;
  for (let i = 0; i < count; i++) {
    const end = body.indexOf(0, start);
    if (end < 0) break;
    strings.push(body.toString("utf8", start, end));
    start = end + 1;
  }
  return strings;
}

interface Link {
  client: Socket;
  upstream: Socket;
  toServer: Direction;
  toClient: Direction;
  /** Client messages held behind a COMMIT (postgres only). */
  heldFromCommit: Buffer[] | undefined;
}

export async function startTcpProxy(
  target: { host: string; port: number },
  options: TcpProxyOptions = {},
): Promise<TcpProxy> {
  const links = new Set<Link>();
  let frozen = false;
  let commitWanted: (() => void) | undefined;
  let server: Server = createServer(onConnection);
  let port = 0;

  function onConnection(client: Socket): void {
    const upstream = connect(target.port, target.host);
    const link: Link = {
      client,
      upstream,
      toServer: new Direction(upstream),
      toClient: new Direction(client),
      heldFromCommit: undefined,
    };
    links.add(link);
    const end = () => {
      links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    upstream.on("data", (chunk: Buffer) => link.toClient.send(chunk, frozen));
    const parser = options.protocol === "postgres" ? new PostgresClientStream() : undefined;
    client.on("data", (chunk: Buffer) => {
      if (parser === undefined) {
        link.toServer.send(chunk, frozen);
        return;
      }
      for (const { message, commit } of parser.push(chunk)) {
        if (link.heldFromCommit === undefined && commit && commitWanted !== undefined) {
          link.heldFromCommit = [];
          commitWanted();
          commitWanted = undefined;
        }
        if (link.heldFromCommit !== undefined) link.heldFromCommit.push(message);
        else link.toServer.send(message, frozen);
      }
    });
  }

  async function listen(): Promise<void> {
    server.listen(port, HOST);
    await once(server, "listening");
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("no TCP address");
    port = address.port;
  }

  function cutAll(): void {
    for (const link of links) {
      link.client.resetAndDestroy();
      link.upstream.destroy();
    }
    links.clear();
  }

  await listen();
  return {
    host: HOST,
    get port() {
      return port;
    },
    freeze() {
      frozen = true;
    },
    thaw() {
      frozen = false;
      for (const link of links) {
        link.toServer.flush();
        link.toClient.flush();
      }
    },
    async refuse() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      cutAll();
      await closed;
    },
    async accept() {
      server = createServer(onConnection);
      await listen();
    },
    holdNextCommit() {
      if (options.protocol !== "postgres")
        throw new Error("holdNextCommit needs protocol: postgres");
      return new Promise<void>((resolve) => {
        commitWanted = resolve;
      });
    },
    releaseCommit() {
      for (const link of links) {
        const held = link.heldFromCommit;
        if (held === undefined) continue;
        link.heldFromCommit = undefined;
        for (const message of held) link.toServer.send(message, frozen);
      }
    },
    async close() {
      cutAll();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
