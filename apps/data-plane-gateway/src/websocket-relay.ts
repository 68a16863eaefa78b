import {
  type ClientRequest,
  request as httpRequest,
  type IncomingMessage,
  ServerResponse,
} from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP, Socket } from "node:net";
import type { Duplex, Readable } from "node:stream";
import { GatewayError } from "./errors";
import {
  type ForwardResult,
  type ForwardTarget,
  relayedResponseHeaders,
  type UpstreamObserver,
} from "./pipeline/forward";
import { sendError } from "./responses";
import {
  contentCodingOf,
  decodedHeaders,
  decodeStream,
  ENCODING_UNSUPPORTED,
} from "./scrub/content-decoding";
import type { ScrubTally, SecretScrubber } from "./scrub/secret-scrubber";
import { WebSocketFrameScrub } from "./scrub/websocket-frame-scrub";
import { upstreamSecureContext, upstreamTlsError, upstreamTlsFailureReason } from "./upstream-tls";

/**
 * WebSocket upgrades (SPEC §7 "WebSocket upgrades work on routes"). An `Upgrade` request reaches
 * the gateway through the HTTP server's `upgrade` event with the raw socket; `responseForUpgrade`
 * wraps that socket in a `ServerResponse`, so the request runs through the same stages as any
 * other (refusals and errors are ordinary JSON responses). At the forward step a WebSocket
 * handshake comes here instead of to undici (its pools do not upgrade): the prepared request —
 * credential injected, sent to the route's upstream origin — goes out with node:http(s) plus
 * `Connection: Upgrade` / `Upgrade: websocket` (the inject stage drops hop-by-hop headers), and
 * a 101 answer splices the two sockets both ways; any other answer is relayed as a response.
 *
 * Where a credential was injected (`target.scrubber`), what comes back is scrubbed as on any
 * route (SPEC §7): the handshake answer's headers, any other answer as `forward` does, and after
 * a 101 the payload of each frame the upstream sends (`scrub/websocket-frame-scrub.ts`). The
 * offer of frame compression (`Sec-WebSocket-Extensions`, permessage-deflate) is not forwarded
 * there, since a compressed frame would hide the secret.
 */

export interface WebSocketRelaySettings {
  connectTimeoutMs: number;
  /** Time to the upstream's answer to the handshake. */
  headersTimeoutMs: number;
  /** An upgraded connection silent this long in both directions is closed. */
  idleTimeoutMs: number;
  /** Extra CA certificates (PEM) for `wss` upstreams, added to the system's (`upstream-tls.ts`). */
  ca?: readonly string[];
  /** Registers the client socket under its session, so revoking the session closes it. */
  track?: (sessionId: string, socket: Duplex) => void;
}

export type RelayWebSocket = (
  req: IncomingMessage,
  res: ServerResponse,
  target: ForwardTarget,
  observer: UpstreamObserver | null,
  sessionId: string,
) => Promise<ForwardResult>;

const UPGRADE_WITH_BODY = new GatewayError(
  "bad_request",
  "an Upgrade request cannot carry a body through the gateway",
);

function hasToken(value: string | undefined, token: string): boolean {
  if (value === undefined) return false;
  for (const part of value.split(",")) {
    if (part.trim().toLowerCase() === token) return true;
  }
  return false;
}

/** Requests that arrived through an `upgrade` event (their socket is no longer the parser's). */
const upgraded = new WeakSet<IncomingMessage>();

/** A WebSocket opening handshake that arrived through the server's `upgrade` event. */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  return (
    req.headers.upgrade !== undefined &&
    req.method === "GET" &&
    upgraded.has(req) &&
    hasToken(req.headers.upgrade, "websocket")
  );
}

/**
 * Refuses an upgraded request with a body: the server's parser let go of the socket at the end
 * of the headers, so a body would never be read as one.
 */
export function upgradeRefusal(req: IncomingMessage): GatewayError | null {
  if (req.headers.upgrade === undefined || !upgraded.has(req)) return null;
  const length = req.headers["content-length"];
  const body =
    (length !== undefined && length !== "0") || req.headers["transfer-encoding"] !== undefined;
  return body ? UPGRADE_WITH_BODY : null;
}

/**
 * A `ServerResponse` on a socket handed over by the `upgrade` event: one exchange, then the
 * socket is closed (the parser no longer reads it). Null when the socket is not a TCP/TLS one.
 */
export function responseForUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): ServerResponse | null {
  if (!(socket instanceof Socket)) {
    socket.destroy();
    return null;
  }
  upgraded.add(req);
  // Node removed its own listeners from an upgraded socket: without one, an error would throw.
  socket.on("error", () => socket.destroy());
  // Bytes the client sent after the headers go to the upstream once the upgrade is done.
  if (head.length > 0) socket.unshift(head);
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  res.once("finish", () => {
    res.detachSocket(socket);
    socket.destroySoon();
  });
  return res;
}

function handshakeHead(
  upstreamRes: IncomingMessage,
  scrubber: SecretScrubber | null,
  tally: ScrubTally,
): string {
  let text = upstreamRes.statusMessage || "Switching Protocols";
  let raw: readonly string[] = upstreamRes.rawHeaders;
  if (scrubber !== null) {
    text = scrubber.scrubText(text, tally);
    raw = scrubber.scrubRawHeaders(raw, tally);
  }
  let head = `HTTP/1.1 101 ${text}\r\n`;
  for (let i = 0; i < raw.length; i += 2) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return `${head}\r\n`;
}

/** Request headers without the frame-compression offer (see above). */
function withoutExtensions(headers: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.toLowerCase() === "sec-websocket-extensions") continue;
    out.push(headers[i]!, headers[i + 1]!);
  }
  return out;
}

const TIMED_OUT = new Error("upstream handshake timed out");

export function createWebSocketRelay(settings: WebSocketRelaySettings): RelayWebSocket {
  const secureContext = upstreamSecureContext(settings.ca);

  return function relayWebSocket(req, res, target, observer, sessionId) {
    return new Promise<ForwardResult>((settle) => {
      const client = req.socket;
      const url = new URL(target.origin);
      const secure = url.protocol === "https:";
      const hostname = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
      const scrubber = target.scrubber ?? null;
      const tally: ScrubTally = { scrubbedHeaders: 0, scrubbedBody: 0 };
      const headers = scrubber === null ? target.headers : withoutExtensions(target.headers);
      headers.push("connection", "Upgrade", "upgrade", "websocket");
      const options = {
        host: hostname,
        port: url.port === "" ? (secure ? 443 : 80) : Number(url.port),
        method: "GET",
        path: target.path,
        headers,
        agent: false as const,
      };
      const upstreamReq: ClientRequest = secure
        ? httpsRequest({
            ...options,
            ...(isIP(hostname) === 0 ? { servername: hostname } : {}),
            ...(secureContext ? { secureContext } : {}),
          })
        : httpRequest(options);

      let answered = false;
      let finished = false;
      let bytesIn = 0;
      let bytesOut = 0;
      const finish = (status: number, outcome: ForwardResult["outcome"], reason?: string) => {
        if (finished) return;
        finished = true;
        settle({ status, outcome, bytesIn, bytesOut, reason, ...tally });
      };

      let timer = setTimeout(() => upstreamReq.destroy(TIMED_OUT), settings.connectTimeoutMs);
      upstreamReq.once("socket", (socket: Socket) => {
        socket.once(secure ? "secureConnect" : "connect", () => {
          clearTimeout(timer);
          timer = setTimeout(() => upstreamReq.destroy(TIMED_OUT), settings.headersTimeoutMs);
        });
      });

      const onClientGone = () => {
        if (answered) return;
        clearTimeout(timer);
        upstreamReq.destroy();
        finish(0, "client_aborted");
      };
      client.once("close", onClientGone);

      upstreamReq.on("error", (error) => {
        if (answered) return;
        answered = true;
        clearTimeout(timer);
        client.off("close", onClientGone);
        if (client.destroyed) {
          finish(0, "client_aborted");
          return;
        }
        // As in the forward stage: a TLS failure is not counted against the upstream's health.
        const tlsReason = upstreamTlsFailureReason(error);
        if (tlsReason === null) observer?.upstreamFailed();
        const failure =
          error === TIMED_OUT
            ? new GatewayError("upstream_timeout", "the upstream did not answer in time")
            : tlsReason !== null
              ? upstreamTlsError(error)
              : new GatewayError("upstream_unreachable", "the upstream could not be reached", {
                  cause: error,
                });
        sendError(res, failure);
        finish(failure.status, failure.code, tlsReason ?? undefined);
      });

      // Refused (or any non-101 answer): relayed as an ordinary response, then the socket closes.
      upstreamReq.on("response", (upstreamRes) => {
        answered = true;
        clearTimeout(timer);
        client.off("close", onClientGone);
        const status = upstreamRes.statusCode ?? 502;
        observer?.upstreamResponded(status);
        let headers = upstreamRes.headers;
        let text = upstreamRes.statusMessage;
        let body: Readable = upstreamRes;
        if (scrubber !== null) {
          const coding = contentCodingOf(headers["content-encoding"]);
          if (coding === null) {
            upstreamReq.destroy();
            sendError(res, ENCODING_UNSUPPORTED);
            finish(ENCODING_UNSUPPORTED.status, ENCODING_UNSUPPORTED.code);
            return;
          }
          headers = scrubber.scrubHeaders(headers, tally);
          if (text) text = scrubber.scrubText(text, tally);
          if (coding !== "identity") {
            headers = decodedHeaders(headers);
            body = decodeStream(upstreamRes, coding);
            // A body that fails to decode mid-way: the only signal left is a broken connection.
            body.once("error", () => res.destroy());
          }
          body = body.pipe(scrubber.transform(tally));
        }
        res.writeHead(status, text, relayedResponseHeaders(headers));
        body.on("data", (chunk: Buffer) => {
          bytesOut += chunk.length;
        });
        body.pipe(res);
        upstreamReq.setTimeout(settings.idleTimeoutMs, () => upstreamReq.destroy());
        res.once("finish", () => finish(status, "forwarded"));
        res.once("close", () => {
          upstreamReq.destroy();
          finish(status, res.writableFinished ? "forwarded" : "upstream_reset");
        });
        upstreamRes.once("error", () => res.destroy());
      });

      upstreamReq.on("upgrade", (upstreamRes, upstream: Socket, upstreamHead: Buffer) => {
        answered = true;
        clearTimeout(timer);
        client.off("close", onClientGone);
        observer?.upstreamResponded(101);
        upstream.on("error", () => upstream.destroy());
        if (client.destroyed) {
          upstream.destroy();
          finish(0, "client_aborted");
          return;
        }
        res.detachSocket(client);
        client.write(handshakeHead(upstreamRes, scrubber, tally));
        // The upstream's frames, through the scrub where a credential was injected.
        let fromUpstream: Readable = upstream;
        if (scrubber !== null) {
          const scrub = new WebSocketFrameScrub(scrubber, tally);
          if (upstreamHead.length > 0) scrub.write(upstreamHead);
          fromUpstream = upstream.pipe(scrub);
        } else if (upstreamHead.length > 0) {
          client.write(upstreamHead);
        }
        // The client socket may carry the proxy's idle timeout; the upstream side's governs now.
        if (client instanceof Socket) client.setTimeout(0);
        upstream.setNoDelay(true);
        upstream.setTimeout(settings.idleTimeoutMs, () => upstream.destroy());
        // Pipes first: the counting listeners must not start the flow without them.
        client.pipe(upstream);
        fromUpstream.pipe(client);
        client.on("data", (chunk: Buffer) => {
          bytesIn += chunk.length;
        });
        fromUpstream.on("data", (chunk: Buffer) => {
          bytesOut += chunk.length;
        });
        let open = 2;
        const closed = () => {
          open--;
          if (open === 0) finish(101, "forwarded");
        };
        client.once("close", () => {
          upstream.destroy();
          closed();
        });
        upstream.once("close", () => {
          client.destroy();
          closed();
        });
        settings.track?.(sessionId, client);
      });

      upstreamReq.end();
    });
  };
}
