import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Socket } from "node:net";
import type { TestCa } from "./tls";

export type RequestHandler = (
  request: IncomingMessage,
  response: ServerResponse,
) => void | Promise<void>;

export interface RunningServer {
  /** Base URL without a trailing slash, e.g. `http://127.0.0.1:41234`. */
  url: string;
  port: number;
  /** Stops listening and destroys open connections, so a test never waits on a kept-alive socket. */
  close(): Promise<void>;
}

export interface HttpsServerOptions {
  /** Issues the server's certificate. */
  ca: TestCa;
  /** Names and addresses the certificate covers. Defaults to localhost, 127.0.0.1 and ::1. */
  hosts?: string[];
}

const HOST = "127.0.0.1";

/** Starts an HTTP server on a free port of 127.0.0.1. */
export function startHttpServer(handler: RequestHandler): Promise<RunningServer> {
  return listen(createServer(safely(handler)), "http");
}

/** Starts an HTTPS server on a free port of 127.0.0.1, with a leaf certificate from `ca`. */
export async function startHttpsServer(
  handler: RequestHandler,
  options: HttpsServerOptions,
): Promise<RunningServer> {
  const { certPem, keyPem } = await options.ca.issueLeaf({
    hosts: options.hosts ?? ["localhost", "127.0.0.1", "::1"],
  });
  return listen(createHttpsServer({ cert: certPem, key: keyPem }, safely(handler)), "https");
}

/** Responds with JSON describing the request it received: method, url, headers and body. */
export const echoHandler: RequestHandler = async (request, response) => {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk);
  const body = JSON.stringify({
    method: request.method,
    url: request.url,
    headers: request.headers,
    body: Buffer.concat(chunks).toString("utf8"),
  });
  response.writeHead(200, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  response.end(body);
};

/** A handler that throws answers 500 with the error message instead of leaving the client hanging. */
function safely(handler: RequestHandler): RequestHandler {
  return async (request, response) => {
    try {
      await handler(request, response);
    } catch (error) {
      if (!response.headersSent) response.writeHead(500, { "content-type": "text/plain" });
      response.end(error instanceof Error ? error.message : String(error));
    }
  };
}

function listen(server: Server, scheme: "http" | "https"): Promise<RunningServer> {
  // Tracked by hand rather than with closeAllConnections(): that misses upgraded and CONNECT sockets.
  const sockets = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, HOST, () => {
      server.off("error", reject);
      const address = server.address();
      if (address === null || typeof address === "string") {
        reject(new Error("the server has no TCP address"));
        return;
      }
      const { port } = address;
      resolve({
        url: `${scheme}://${HOST}:${port}`,
        port,
        close: () =>
          new Promise<void>((closed, failed) => {
            server.close((error) => (error ? failed(error) : closed()));
            for (const socket of sockets) socket.destroy();
          }),
      });
    });
  });
}
