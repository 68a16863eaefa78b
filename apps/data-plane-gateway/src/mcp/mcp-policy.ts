import {
  CallToolRequestSchema,
  ErrorCode,
  JSONRPCMessageSchema,
  ListToolsResultSchema,
  type RequestId,
} from "@modelcontextprotocol/sdk/types.js";

/**
 * The MCP tool allow-list of a route (SPEC §7 "MCP awareness"), as pure functions over JSON-RPC
 * messages validated with the MCP SDK's schemas: which request bodies may go upstream, and what
 * a `tools/list` result looks like once the tools outside the list are removed. No I/O here;
 * `mcp-guard.ts` reads bodies and `mcp-response-filter.ts` rewrites responses with these.
 */

/** JSON-RPC error code for a refused tool: the one MCP servers use for an unknown tool. */
export const TOOL_NOT_ALLOWED_CODE = ErrorCode.InvalidParams;
export const TOOL_NOT_ALLOWED_MESSAGE = "tool not allowed by Keyway policy";

export type McpRequestOutcome =
  | "mcp_tool_denied"
  | "mcp_invalid_message"
  | "mcp_body_too_large"
  | "mcp_unsupported_encoding";

/** What to do with a request body on an allow-listed route. */
export type McpRequestVerdict =
  | {
      kind: "forward";
      /**
       * The body re-serialized from what was checked, so the upstream parses exactly the
       * messages the policy saw (no duplicate keys, escapes or other parser differences).
       */
      body: Buffer;
      /** Ids of the `tools/list` requests in the body: their results are filtered. */
      toolsListIds: ReadonlySet<RequestId>;
    }
  | {
      kind: "answer";
      /** 200 for a refused tool call (a JSON-RPC error response), else 400. */
      status: number;
      body: string;
      outcome: McpRequestOutcome;
    };

export type McpAnswerVerdict = Extract<McpRequestVerdict, { kind: "answer" }>;

interface JsonRpcErrorResponse {
  jsonrpc: "2.0";
  id: RequestId | null;
  error: { code: number; message: string; data?: unknown };
}

export function jsonRpcError(
  id: RequestId | null,
  code: number,
  message: string,
  data?: unknown,
): JsonRpcErrorResponse {
  return {
    jsonrpc: "2.0",
    id,
    error: data === undefined ? { code, message } : { code, message, data },
  };
}

/** A refusal of the whole body before any message could be read (HTTP status ≠ 200). */
export function refuseBody(
  status: number,
  code: number,
  message: string,
  outcome: McpRequestOutcome,
): McpAnswerVerdict {
  return {
    kind: "answer",
    status,
    body: JSON.stringify(jsonRpcError(null, code, message)),
    outcome,
  };
}

const BATCH_REFUSED = "batch refused by Keyway policy: it contains a tool call that is not allowed";

/**
 * Checks a request body: it must be one JSON-RPC message or a batch of them (MCP SDK
 * `JSONRPCMessageSchema`); every `tools/call` request must pass `CallToolRequestSchema` and name
 * an allowed tool. A body with a refused call is answered as a whole, nothing of it forwarded: a
 * JSON-RPC error (`-32602`, "tool not allowed by Keyway policy") for each refused call and,
 * in a batch, an error for every other request too (a batch is not split).
 */
export function screenMcpRequestBody(
  body: Buffer,
  allowed: ReadonlySet<string>,
): McpRequestVerdict {
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch {
    return refuseBody(
      400,
      ErrorCode.ParseError,
      "Parse error: the body is not JSON",
      "mcp_invalid_message",
    );
  }
  const batch = Array.isArray(value);
  const items: unknown[] = Array.isArray(value) ? value : [value];
  if (items.length === 0) {
    return refuseBody(
      400,
      ErrorCode.InvalidRequest,
      "Invalid Request: empty batch",
      "mcp_invalid_message",
    );
  }

  const toolsListIds = new Set<RequestId>();
  const requestIds: RequestId[] = [];
  const refused = new Map<RequestId, JsonRpcErrorResponse>();
  for (const item of items) {
    const parsed = JSONRPCMessageSchema.safeParse(item);
    if (!parsed.success) {
      return refuseBody(
        400,
        ErrorCode.InvalidRequest,
        "Invalid Request: not a JSON-RPC 2.0 message",
        "mcp_invalid_message",
      );
    }
    const message = parsed.data;
    if (!("method" in message)) continue; // a response to a server request
    if (!("id" in message)) {
      // A notification cannot be answered, and a lenient server might still run it.
      if (message.method === "tools/call") {
        return refuseBody(
          400,
          ErrorCode.InvalidRequest,
          "Invalid Request: tools/call must be a request",
          "mcp_invalid_message",
        );
      }
      continue;
    }
    requestIds.push(message.id);
    if (message.method === "tools/list") {
      toolsListIds.add(message.id);
    } else if (message.method === "tools/call") {
      const call = CallToolRequestSchema.safeParse(message);
      if (!call.success) {
        refused.set(
          message.id,
          jsonRpcError(message.id, ErrorCode.InvalidParams, "Invalid params for tools/call"),
        );
      } else if (!allowed.has(call.data.params.name)) {
        refused.set(
          message.id,
          jsonRpcError(message.id, TOOL_NOT_ALLOWED_CODE, TOOL_NOT_ALLOWED_MESSAGE, {
            tool: call.data.params.name,
          }),
        );
      }
    }
  }

  if (refused.size > 0) {
    const answers = batch
      ? requestIds.map(
          (id) => refused.get(id) ?? jsonRpcError(id, ErrorCode.InvalidRequest, BATCH_REFUSED),
        )
      : [...refused.values()][0];
    return {
      kind: "answer",
      status: 200,
      body: JSON.stringify(answers),
      outcome: "mcp_tool_denied",
    };
  }
  return { kind: "forward", body: Buffer.from(JSON.stringify(value)), toolsListIds };
}

/**
 * Which responses hold a `tools/list` result: those with one of the request's ids, or — for a
 * stream whose requests were not seen (a `GET` stream: a resumed one, the legacy SSE transport)
 * — any result that carries `tools`.
 */
export type ToolsListMatch = ReadonlySet<RequestId> | "any";

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * One response with the tools outside the list removed, or `null` when it is not a `tools/list`
 * result or lists only allowed tools. A result that fails `ListToolsResultSchema` is replaced by a
 * JSON-RPC error: it cannot be checked, so it is not relayed.
 */
function filterResponse(
  message: unknown,
  allowed: ReadonlySet<string>,
  match: ToolsListMatch,
): unknown | null {
  // Recognized by shape rather than by the strict envelope schema: a lenient client would read
  // a `tools` result even from an envelope the SDK refuses.
  if (!isRecord(message) || !isRecord(message.result)) return null;
  const { id, result } = message;
  const isToolsList =
    match === "any"
      ? "tools" in result
      : (typeof id === "string" || typeof id === "number") && match.has(id);
  if (!isToolsList) return null;
  const requestId = typeof id === "string" || typeof id === "number" ? id : null;
  const listed = ListToolsResultSchema.safeParse(result);
  const tools: unknown = result.tools;
  if (!listed.success || !Array.isArray(tools)) {
    return jsonRpcError(
      requestId,
      ErrorCode.InternalError,
      "the server's tools/list result could not be checked by Keyway policy",
    );
  }
  const kept: unknown[] = [];
  for (let i = 0; i < tools.length; i++) {
    const name = listed.data.tools[i]?.name;
    if (name !== undefined && allowed.has(name)) kept.push(tools[i]);
  }
  if (kept.length === tools.length) return null;
  return { ...message, result: { ...result, tools: kept } };
}

/**
 * A JSON-RPC message or batch (already parsed) with its `tools/list` results filtered, or `null`
 * when nothing changes.
 */
export function filterToolsListResults(
  value: unknown,
  allowed: ReadonlySet<string>,
  match: ToolsListMatch,
): unknown | null {
  if (!Array.isArray(value)) return filterResponse(value, allowed, match);
  let changed = false;
  const out = value.map((item: unknown) => {
    const filtered = filterResponse(item, allowed, match);
    if (filtered === null) return item;
    changed = true;
    return filtered;
  });
  return changed ? out : null;
}

/** The text of a JSON body or SSE `data` with its `tools/list` results filtered; `null` = as is. */
export function filterToolsListText(
  text: string,
  allowed: ReadonlySet<string>,
  match: ToolsListMatch,
): string | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // Not JSON, so no client can read a tool list out of it.
    return null;
  }
  const filtered = filterToolsListResults(value, allowed, match);
  return filtered === null ? null : JSON.stringify(filtered);
}
