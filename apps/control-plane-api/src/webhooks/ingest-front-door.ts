import type { IncomingMessage, ServerResponse } from "node:http";
import type { FrontDoor } from "../app";
import type { AppDeps } from "../deps";
import { errorHeaders, errorOf, logRequestFailure } from "../errors";
import { drainUnreadBody } from "../request-body";
import { createRequestDeadline } from "../request-deadline";
import { createRequestObserver, observedHeadersOf } from "../request-observer";
import { type IngestDeps, type IngestResult, receiveWebhook } from "./ingest";
import { rawIncomingWebhookRequest } from "./raw-request";

/**
 * The webhook route's front door: a plain Node handler in front of hono for
 * `POST /p/integration/webhooks/{targetKey}`, the API's hottest route (a provider may send a
 * thousand events a second). Through `@hono/node-server`, hono and the app's middleware each
 * request cost ≈ 50 µs of CPU more (a `Request` and its `Headers`, the router, the middleware
 * chain, the param validator and text check, a `Response`): 198 against 150 µs per signed ping
 * in one process, alternating; `pnpm bench:webhooks --through-hono` compares the whole ingest
 * (docs/benchmarks.md, Webhooks, "2026-12-06 (branch `ingest-front`)").
 *
 * It answers exactly as the hono route does (`ingest-routes.ts`, over the same ingest), with what
 * the app's middleware gives every request: the request id (and its `x-request-id` header), the
 * access-log line, the request metrics and span (`request-observer.ts`), the deadline
 * (`request-deadline.ts`), and errors through the one mapping (`errorOf`). It takes only requests
 * whose every part it can judge as hono would without parsing them: POST, a target key of
 * characters no URL parser rewrites, a host header the adapter accepts. Anything else (another
 * method, a percent-encoded or dot-segment key, a trailing slash, a strange host) goes to hono,
 * which answers it as before.
 */

export const WEBHOOK_INGEST_PATH = "/p/integration/webhooks/{targetKey}";
/** The route's pattern as hono names it: the `route` of the request metrics and span. */
const WEBHOOK_INGEST_ROUTE = "/p/integration/webhooks/:targetKey";
const PREFIX = "/p/integration/webhooks/";
/**
 * Keys served here: unreserved URL characters only (nothing to decode or normalise), not a dot
 * segment, within the route's parameter schema (1–64 characters) and its text check.
 */
const PLAIN_TARGET_KEY = /^(?!\.\.?$)[A-Za-z0-9._~-]{1,64}$/;

/** hono's content types: `c.json`'s, and the Node adapter's default for a body without one. */
const JSON_TYPE = "application/json";
const TEXT_TYPE = "text/plain; charset=UTF-8";

export function webhookFrontDoor(deps: AppDeps, ingest: IngestDeps): FrontDoor {
  const observeRequest = createRequestObserver(deps);
  const withinDeadline = createRequestDeadline({
    timeoutMs: deps.settings.requestTimeoutMs,
    logger: deps.logger,
  });
  const acceptsHost = hostCheck();

  async function serve(
    incoming: IncomingMessage,
    outgoing: ServerResponse,
    path: string,
    targetKey: string,
  ): Promise<void> {
    const observed = observeRequest("POST", path, observedHeadersOf(incoming));
    const { requestId } = observed;
    let answer: Answer;
    try {
      const result = await withinDeadline(requestId, (deadline) =>
        receiveWebhook(ingest, {
          targetKey,
          requestId,
          deadline,
          raw: rawIncomingWebhookRequest(incoming),
        }),
      );
      answer = answerOf(result);
    } catch (error) {
      logRequestFailure(deps.logger, error, requestId);
      const { status, body } = errorOf(error, requestId);
      answer = {
        status,
        headers: { ...errorHeaders(status), "content-type": JSON_TYPE },
        body: JSON.stringify(body),
      };
    }
    observed.end(WEBHOOK_INGEST_ROUTE, answer.status);
    // A body left unread (413) is read and dropped after the answer, as hono's adapter does. (A
    // body read to its end stays so: no listener, which every accepted event would pay for.)
    if (!incoming.readableEnded) outgoing.once("finish", () => drainUnreadBody(incoming));
    outgoing.writeHead(answer.status, {
      "x-request-id": requestId,
      ...answer.headers,
      "content-length": Buffer.byteLength(answer.body),
    });
    outgoing.end(answer.body);
  }

  return function webhookFrontDoor(incoming, outgoing) {
    const url = incoming.url;
    if (incoming.method !== "POST" || url === undefined || !url.startsWith(PREFIX)) return false;
    const query = url.indexOf("?", PREFIX.length);
    const path = query < 0 ? url : url.slice(0, query);
    const targetKey = path.slice(PREFIX.length);
    if (!PLAIN_TARGET_KEY.test(targetKey) || !acceptsHost(incoming.headers.host)) return false;
    serve(incoming, outgoing, path, targetKey).catch((error: unknown) => {
      // Only writing the answer can fail here (the socket went away): nothing left to tell.
      logRequestFailure(deps.logger, error, "");
      outgoing.destroy();
    });
    return true;
  };
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The route's answers, as its hono handler gives them (`c.json`, or `c.body` with its headers). */
function answerOf(result: IngestResult): Answer {
  if (result.kind === "accepted") {
    return {
      status: 202,
      headers: { "content-type": JSON_TYPE },
      body: JSON.stringify({ id: result.id, duplicate: result.duplicate }),
    };
  }
  const { status, headers, body } = result.response;
  const named: Record<string, string> = { "content-type": TEXT_TYPE };
  for (const [name, value] of Object.entries(headers ?? {})) named[name.toLowerCase()] = value;
  return { status, headers: named, body };
}

/**
 * Whether hono's Node adapter would take the `Host` header: it answers 400 to a missing one and
 * to one its URL parser rewrites (`127.1`, upper case with a port). The last accepted host is
 * remembered: a provider's requests all carry the same one.
 */
function hostCheck(): (host: string | undefined) => boolean {
  let accepted: string | undefined;
  return (host) => {
    if (host === accepted) return host !== undefined;
    if (host === undefined || host === "") return false;
    let hostname: string;
    try {
      hostname = new URL(`http://${host}/`).hostname;
    } catch {
      return false;
    }
    if (hostname.length !== host.length && hostname !== host.replace(/:\d+$/, "")) return false;
    accepted = host;
    return true;
  };
}
