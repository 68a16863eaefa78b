import type { IncomingMessage, ServerResponse } from "node:http";
import type { EgressRoute } from "@keyway/integrations-core";
import { ErrorCode, type RequestId } from "@modelcontextprotocol/sdk/types.js";
import type { Dispatcher } from "undici";
import { GatewayError } from "../errors";
import { type McpRequestOutcome, refuseBody, screenMcpRequestBody } from "./mcp-policy";
import { McpResponseFilter, type McpResponseLimits } from "./mcp-response-filter";

/**
 * The MCP stage, between classify and resolve credential, for routes that carry
 * `mcp.toolAllowlist` (SPEC §7 "MCP awareness"). It reads the request body (at most
 * `maxRequestBytes`), checks it with `screenMcpRequestBody`, and either answers the sandbox itself
 * (a refused tool call, a body that is not MCP) — before any credential is resolved and without
 * the upstream seeing anything — or hands back what `forward` needs: the checked body, headers
 * to match it, and a response filter for `tools/list` results. Routes without an allow-list never
 * get here, so only MCP routes pay for parsing.
 */

export interface McpGuardSettings {
  /** Default 1 MiB; a larger body gets 413. */
  maxRequestBytes?: number;
  /** Default 4 MiB: JSON responses buffered to filter `tools/list` results. */
  maxJsonResponseBytes?: number;
  /** Default 4 Mi characters: one event of an event stream on an allow-listed route. */
  maxEventChars?: number;
}

/** What a request the MCP stage answered itself adds up to, for the record stage. */
export interface McpAnswer {
  status: number;
  outcome: McpRequestOutcome | "client_aborted";
  bytesIn: number;
  bytesOut: number;
}

/** The fields `forward` takes beyond origin, path and headers. */
export interface McpForwardExtras {
  body?: Buffer;
  wrapHandler(handler: Dispatcher.DispatchHandler): Dispatcher.DispatchHandler;
}

export type McpScreening =
  | { kind: "answered"; answer: McpAnswer }
  | {
      kind: "forward";
      /** The upstream request with the checked body, matching headers and the response filter. */
      prepare<T extends { headers: string[] }>(target: T): T & McpForwardExtras;
    };

export type ScreenMcpRequest = (
  req: IncomingMessage,
  res: ServerResponse,
  route: EgressRoute,
) => Promise<McpScreening>;

const MiB = 1024 * 1024;
const UPGRADE_REFUSED = new GatewayError(
  "policy_denied",
  "connection upgrades are refused on routes with an MCP tool allow-list",
);
const TOO_LARGE = Symbol("too large");
const ABORTED = Symbol("aborted");

/** Request headers the checked body replaces; `accept-encoding` so responses can be read. */
const REPLACED_HEADERS: ReadonlySet<string> = new Set([
  "content-length",
  "transfer-encoding",
  "accept-encoding",
]);

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return (length !== undefined && length !== "0") || req.headers["transfer-encoding"] !== undefined;
}

function readBody(
  req: IncomingMessage,
  limit: number,
): Promise<Buffer | typeof TOO_LARGE | typeof ABORTED> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const finish = (result: Buffer | typeof TOO_LARGE | typeof ABORTED) => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onAborted);
      req.off("close", onAborted);
      if (result === TOO_LARGE) req.pause();
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      length += chunk.length;
      if (length > limit) finish(TOO_LARGE);
      else chunks.push(chunk);
    };
    const onEnd = () => finish(Buffer.concat(chunks, length));
    const onAborted = () => finish(ABORTED);
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", onAborted);
    req.once("close", onAborted);
  });
}

/** Sends a JSON-RPC answer; `close` when the request body was left unread. */
function sendAnswer(res: ServerResponse, status: number, body: string, close: boolean): number {
  const length = Buffer.byteLength(body);
  const headers = ["content-type", "application/json", "content-length", String(length)];
  if (close) {
    headers.push("connection", "close");
    res.shouldKeepAlive = false;
  }
  res.writeHead(status, headers);
  res.end(body);
  return length;
}

function upstreamHeaders(headers: readonly string[], body: Buffer | undefined): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] ?? "";
    if (REPLACED_HEADERS.has(name.toLowerCase())) continue;
    out.push(name, headers[i + 1] ?? "");
  }
  if (body !== undefined) out.push("content-length", String(body.length));
  out.push("accept-encoding", "identity");
  return out;
}

export function createMcpGuard(settings: McpGuardSettings = {}): ScreenMcpRequest {
  const maxRequestBytes = settings.maxRequestBytes ?? MiB;
  const limits: McpResponseLimits = {
    maxJsonBytes: settings.maxJsonResponseBytes ?? 4 * MiB,
    maxEventChars: settings.maxEventChars ?? 4 * MiB,
  };
  const tooLarge = refuseBody(
    413,
    ErrorCode.InvalidRequest,
    `Invalid Request: the body exceeds ${maxRequestBytes} bytes`,
    "mcp_body_too_large",
  );
  const encoded = refuseBody(
    415,
    ErrorCode.ParseError,
    "Parse error: compressed request bodies are not accepted on MCP routes",
    "mcp_unsupported_encoding",
  );
  /**
   * Built once per `route.mcp` object: plans are immutable, and the plan cache shares it among
   * the plans of one shape.
   */
  const allowLists = new WeakMap<NonNullable<EgressRoute["mcp"]>, ReadonlySet<string>>();
  const NONE: ReadonlySet<string> = new Set();

  function allowListOf(route: EgressRoute): ReadonlySet<string> {
    const mcp = route.mcp;
    if (mcp === undefined) return NONE;
    let allowed = allowLists.get(mcp);
    if (allowed === undefined) {
      allowed = new Set(mcp.toolAllowlist ?? []);
      allowLists.set(mcp, allowed);
    }
    return allowed;
  }

  function forwarding(
    allowed: ReadonlySet<string>,
    body: Buffer | undefined,
    toolsListIds: ReadonlySet<RequestId> | null,
    filterResponses: boolean,
  ): McpScreening {
    return {
      kind: "forward",
      prepare(target) {
        return {
          ...target,
          headers: upstreamHeaders(target.headers, body),
          ...(body === undefined ? {} : { body }),
          wrapHandler: (handler) =>
            filterResponses
              ? new McpResponseFilter(handler, allowed, toolsListIds ?? "any", limits)
              : handler,
        };
      },
    };
  }

  return async function screenMcpRequest(req, res, route) {
    // Frames of an upgraded connection (an MCP WebSocket transport) could not be checked.
    if (req.headers.upgrade !== undefined) throw UPGRADE_REFUSED;
    const allowed = allowListOf(route);
    const method = req.method ?? "";
    if (method !== "POST" && !hasBody(req)) {
      // A GET stream (server messages, resumed or legacy-transport responses), DELETE, …: no
      // requests of the sandbox to read, so any `tools/list` result in the response is filtered.
      return forwarding(allowed, undefined, null, method !== "HEAD");
    }
    const encoding = req.headers["content-encoding"];
    if (encoding !== undefined && encoding.toLowerCase() !== "identity") {
      const bytesOut = sendAnswer(res, encoded.status, encoded.body, true);
      return answered(encoded.status, encoded.outcome, 0, bytesOut);
    }
    const declared = Number(req.headers["content-length"] ?? 0);
    const body = declared > maxRequestBytes ? TOO_LARGE : await readBody(req, maxRequestBytes);
    if (body === ABORTED) return answered(0, "client_aborted", 0, 0);
    if (body === TOO_LARGE) {
      const bytesOut = sendAnswer(res, tooLarge.status, tooLarge.body, true);
      return answered(tooLarge.status, tooLarge.outcome, 0, bytesOut);
    }
    const verdict = screenMcpRequestBody(body, allowed);
    if (verdict.kind === "answer") {
      const bytesOut = sendAnswer(res, verdict.status, verdict.body, false);
      return answered(verdict.status, verdict.outcome, body.length, bytesOut);
    }
    // Responses to a POST without `tools/list` carry no tool list: relayed untouched.
    return forwarding(allowed, verdict.body, verdict.toolsListIds, verdict.toolsListIds.size > 0);
  };
}

function answered(
  status: number,
  outcome: McpAnswer["outcome"],
  bytesIn: number,
  bytesOut: number,
): McpScreening {
  return { kind: "answered", answer: { status, outcome, bytesIn, bytesOut } };
}
