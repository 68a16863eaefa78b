import type { IncomingMessage } from "node:http";
import { connect, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { type SecureContext, TLSSocket } from "node:tls";
import { newTraceId } from "@keyway/observability";
import { parseAuthority } from "./authority";
import { asGatewayError, GatewayError } from "./errors";
import type { TunnelContext } from "./exchange";
import type { LeafContexts } from "./leaf-certificates";
import type { Authenticate } from "./pipeline/authenticate";
import type { AuthorizeEgress, Destination } from "./pipeline/authorize";
import type { Classify } from "./pipeline/classify";
import type { ExchangeRecord, RecordExchange } from "./pipeline/record";
import { writeSocketError } from "./responses";
import type { Tunnels } from "./tunnels";

/**
 * `CONNECT host:port` (SPEC §7 "CONNECT"). A host named by a route of the session's plan is
 * intercepted: TLS is terminated with a leaf for that host (ALPN `http/1.1`) and the decrypted
 * stream is handed to an HTTP server, so Node's parser (strict, smuggling shapes refused) reads
 * each inner request. Any other host goes through the egress policy: allowed → the TCP stream is
 * spliced untouched to the checked address; denied → 403.
 */

export interface ConnectStages {
  authenticate: Authenticate;
  classify: Classify;
  authorizeEgress: AuthorizeEgress;
  leafContexts: LeafContexts;
  tunnels: Tunnels;
  recordExchange: RecordExchange;
  /**
   * Hands an intercepted tunnel to the inner HTTP server: a TLS socket, or the client socket
   * itself with the bytes already read from it (`firstBytes`) for plain HTTP.
   */
  deliverIntercepted(socket: Socket, context: TunnelContext, firstBytes: Buffer | null): void;
  connectTimeoutMs: number;
  /** How long a new tunnel may stay silent before its first byte. */
  firstByteTimeoutMs: number;
}

export type HandleConnect = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

// Per-tunnel work hoisted out of the CONNECT path (`pnpm bench:storm`, a new tunnel per sandbox):
// the answer as bytes, the ALPN list already in its wire form (length-prefixed names), and
// listeners shared by every tunnel instead of a closure each.
const ESTABLISHED = Buffer.from("HTTP/1.1 200 Connection Established\r\n\r\n", "latin1");
const ALPN_HTTP1 = Buffer.from("\x08http/1.1", "latin1");
const TLS_HANDSHAKE = 0x16;
const BAD_TARGET = new GatewayError("bad_request", "CONNECT needs a host:port target");

/** On a socket error or a silent start the tunnel ends: there is no one left to answer. */
function destroySelf(this: Duplex): void {
  this.destroy();
}

export function createConnectHandler(stages: ConnectStages): HandleConnect {
  const { authenticate, classify } = stages;

  /**
   * Reads the tunnel's first bytes: a TLS ClientHello (first byte 0x16) is terminated with the
   * host's leaf; anything else is taken as plain HTTP (clients such as undici's ProxyAgent tunnel
   * `http://` requests too). Either way the inner server parses the requests.
   */
  function intercept(
    client: Socket,
    head: Buffer,
    context: TunnelContext,
    secureContext: SecureContext,
  ): void {
    client.write(ESTABLISHED);
    const route = (first: Buffer) => {
      client.setTimeout(0);
      client.pause();
      if (first[0] === TLS_HANDSHAKE) {
        // The TLS socket reads what is buffered on the client socket before anything else.
        client.unshift(first);
        const tls = new TLSSocket(client, {
          isServer: true,
          secureContext,
          ALPNProtocols: ALPN_HTTP1,
        });
        // A client that does not trust the gateway CA aborts the handshake: nothing to answer.
        tls.on("error", destroySelf);
        stages.deliverIntercepted(tls, context, null);
      } else {
        stages.deliverIntercepted(client, context, first);
      }
    };
    if (head.length > 0) {
      route(head);
      return;
    }
    client.setTimeout(stages.firstByteTimeoutMs, destroySelf);
    client.once("data", route);
  }

  function splice(client: Socket, head: Buffer, destination: Destination): Promise<void> {
    return new Promise((resolve, reject) => {
      const upstream = connect({
        host: destination.address,
        port: destination.port,
        noDelay: true,
        timeout: stages.connectTimeoutMs,
      });
      const fail = (error: GatewayError) => {
        upstream.destroy();
        reject(error);
      };
      const onError = (cause: Error) =>
        fail(new GatewayError("upstream_unreachable", "the host could not be reached", { cause }));
      const onTimeout = () =>
        fail(
          new GatewayError("upstream_timeout", "the host did not accept the connection in time"),
        );
      upstream.once("error", onError);
      upstream.once("timeout", onTimeout);
      upstream.once("connect", () => {
        upstream.off("error", onError);
        upstream.off("timeout", onTimeout);
        upstream.setTimeout(0);
        if (client.destroyed) {
          upstream.destroy();
          resolve();
          return;
        }
        client.write(ESTABLISHED);
        if (head.length > 0) upstream.write(head);
        // pipe() gives backpressure both ways; a reset on either side ends both.
        client.pipe(upstream);
        upstream.pipe(client);
        upstream.on("error", () => client.destroy());
        upstream.once("close", () => client.destroy());
        client.once("close", () => upstream.destroy());
        resolve();
      });
    });
  }

  async function establish(
    rec: ExchangeRecord,
    req: IncomingMessage,
    client: Socket,
    head: Buffer,
  ): Promise<void> {
    const authority = req.url ?? "";
    const target = parseAuthority(authority, null);
    if (target === null) throw BAD_TARGET;
    const { host } = target;
    rec.host = host;

    const session = await authenticate.authenticateSession(req.headers["proxy-authorization"]);
    rec.sessionId = session.sessionId;
    const loading = classify.loadSessionPlan(session.planDigest);
    const plan = "then" in loading ? await loading : loading;

    if (classify.isManagedHost(plan, authority)) {
      const pending = stages.leafContexts.secureContextFor(target.hostname);
      const secureContext = "then" in pending ? await pending : pending;
      stages.tunnels.track(session.sessionId, client);
      intercept(client, head, { session, plan, authority, host }, secureContext);
      rec.outcome = "intercepted";
    } else {
      const destination = await stages.authorizeEgress(plan, target);
      await splice(client, head, destination);
      stages.tunnels.track(session.sessionId, client);
      rec.outcome = "spliced";
    }
    rec.status = 200;
  }

  return function handleConnect(req, socket, head) {
    const rec: ExchangeRecord = {
      kind: "tunnel",
      startedAt: performance.now(),
      traceId: newTraceId(),
      sessionId: undefined,
      routeId: undefined,
      upstream: undefined,
      bindingId: undefined,
      method: "CONNECT",
      host: undefined,
      status: 0,
      bytesIn: 0,
      bytesOut: 0,
      outcome: "",
    };
    if (!(socket instanceof Socket)) {
      socket.destroy();
      return;
    }
    const client = socket;
    client.on("error", destroySelf);
    // TCP_NODELAY is already on: the proxy server sets it on every connection (`noDelay`).
    establish(rec, req, client, head).then(
      () => {
        const startedIn = client.bytesRead;
        const startedOut = client.bytesWritten;
        client.once("close", () => {
          rec.bytesIn = client.bytesRead - startedIn;
          rec.bytesOut = client.bytesWritten - startedOut;
          stages.recordExchange(rec);
        });
      },
      (error: unknown) => {
        const failure = asGatewayError(error);
        rec.status = failure.status;
        rec.outcome = failure.code;
        writeSocketError(client, failure);
        stages.recordExchange(rec);
      },
    );
  };
}
