import type { IncomingHttpHeaders } from "node:http";
import { ErrorCode } from "@modelcontextprotocol/sdk/types.js";
import type { Dispatcher } from "undici";
import { HandlerDecorator } from "../handler-decorator";
import { filterToolsListText, jsonRpcError, type ToolsListMatch } from "./mcp-policy";
import { createSseRewriter, type SseRewriter } from "./sse-rewriter";

/**
 * An undici dispatch-handler decorator (as undici's own interceptors are) that removes tools
 * outside a route's allow-list from `tools/list` results on their way to the sandbox, around the
 * handler that relays the response. What it touches:
 * - `text/event-stream` (the streamable HTTP transport's streams): relayed one event at a time,
 *   each JSON-RPC message checked, `tools/list` results rewritten (`sse-rewriter.ts`).
 * - JSON: buffered up to `maxJsonBytes`, then filtered and relayed with a new `content-length`.
 * Everything else (non-2xx statuses, other content types) passes through untouched. A response
 * that must be checked but cannot be — compressed, or over the limit before its headers went
 * out — becomes a 502 with a JSON-RPC error; past that point the connection is cut.
 */

export interface McpResponseLimits {
  /** Largest JSON response that is buffered to be filtered. */
  maxJsonBytes: number;
  /** Largest single event of an event stream (characters). */
  maxEventChars: number;
}

const UNCHECKABLE = new Error("the MCP response could not be checked");
const PASS = 0;
const JSON_BODY = 1;
const EVENT_STREAM = 2;

function headerValue(headers: IncomingHttpHeaders, name: string): string {
  const value = headers[name];
  return (Array.isArray(value) ? value.join(",") : (value ?? "")).toLowerCase();
}

function modeOf(status: number, headers: IncomingHttpHeaders): number {
  if (status < 200 || status > 299) return PASS;
  const type = headerValue(headers, "content-type").split(";", 1)[0]?.trim() ?? "";
  if (type === "text/event-stream") return EVENT_STREAM;
  if (type === "application/json" || type.endsWith("+json")) return JSON_BODY;
  return PASS;
}

function withoutLength(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const copy = { ...headers };
  delete copy["content-length"];
  return copy;
}

export class McpResponseFilter extends HandlerDecorator {
  #mode = PASS;
  #status = 0;
  #headers: IncomingHttpHeaders = {};
  #statusMessage: string | undefined;
  #chunks: Buffer[] = [];
  #length = 0;
  #events: SseRewriter | null = null;
  /** Set once this filter answered the client itself; upstream events after that are dropped. */
  #answered = false;

  constructor(
    inner: Dispatcher.DispatchHandler,
    private readonly allowed: ReadonlySet<string>,
    private readonly match: ToolsListMatch,
    private readonly limits: McpResponseLimits,
  ) {
    super(inner);
  }

  override onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    this.#mode = modeOf(statusCode, headers);
    if (this.#mode === PASS) {
      this.inner.onResponseStart?.(controller, statusCode, headers, statusMessage);
      return;
    }
    const encoding = headerValue(headers, "content-encoding");
    if (encoding !== "" && encoding !== "identity") {
      this.#refuse(controller, "the server's response is compressed and cannot be checked");
      return;
    }
    if (this.#mode === EVENT_STREAM) {
      const { allowed, match } = this;
      this.#events = createSseRewriter(
        (data) => filterToolsListText(data, allowed, match),
        this.limits.maxEventChars,
      );
      this.inner.onResponseStart?.(controller, statusCode, withoutLength(headers), statusMessage);
      return;
    }
    if (Number(headerValue(headers, "content-length")) > this.limits.maxJsonBytes) {
      this.#refuse(controller, "the server's response is too large to be checked");
      return;
    }
    this.#status = statusCode;
    this.#headers = headers;
    this.#statusMessage = statusMessage;
  }

  override onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#answered) return;
    if (this.#mode === PASS) {
      this.inner.onResponseData?.(controller, chunk);
    } else if (this.#events !== null) {
      let out: string;
      try {
        out = this.#events.push(chunk);
      } catch (error) {
        controller.abort(error instanceof Error ? error : UNCHECKABLE);
        return;
      }
      if (out.length > 0) this.inner.onResponseData?.(controller, Buffer.from(out));
    } else {
      this.#length += chunk.length;
      if (this.#length > this.limits.maxJsonBytes) {
        this.#refuse(controller, "the server's response is too large to be checked");
        return;
      }
      this.#chunks.push(chunk);
    }
  }

  override onResponseEnd(
    controller: Dispatcher.DispatchController,
    trailers: IncomingHttpHeaders,
  ): void {
    if (this.#answered) return;
    if (this.#mode === PASS) {
      this.inner.onResponseEnd?.(controller, trailers);
    } else if (this.#events !== null) {
      const out = this.#events.end();
      if (out.length > 0) this.inner.onResponseData?.(controller, Buffer.from(out));
      this.inner.onResponseEnd?.(controller, trailers);
    } else {
      const received = Buffer.concat(this.#chunks, this.#length);
      this.#chunks = [];
      const filtered = filterToolsListText(received.toString("utf8"), this.allowed, this.match);
      const body = filtered === null ? received : Buffer.from(filtered);
      const headers = { ...this.#headers, "content-length": String(body.length) };
      this.inner.onResponseStart?.(controller, this.#status, headers, this.#statusMessage);
      this.inner.onResponseData?.(controller, body);
      this.inner.onResponseEnd?.(controller, trailers);
    }
  }

  override onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    if (this.#answered) return;
    this.inner.onResponseError?.(controller, error);
  }

  /** Answers 502 with a JSON-RPC error before anything was relayed, and drops the upstream. */
  #refuse(controller: Dispatcher.DispatchController, message: string): void {
    this.#answered = true;
    this.#chunks = [];
    const body = Buffer.from(JSON.stringify(jsonRpcError(null, ErrorCode.InternalError, message)));
    this.inner.onResponseStart?.(controller, 502, {
      "content-type": "application/json",
      "content-length": String(body.length),
    });
    this.inner.onResponseData?.(controller, body);
    this.inner.onResponseEnd?.(controller, {});
    controller.abort(UNCHECKABLE);
  }
}
