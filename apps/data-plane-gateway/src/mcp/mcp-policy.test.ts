import { describe, expect, it } from "vitest";
import { filterToolsListText, type McpRequestVerdict, screenMcpRequestBody } from "./mcp-policy";
import { createSseRewriter } from "./sse-rewriter";

const ALLOWED: ReadonlySet<string> = new Set(["list_issues", "get_issue"]);

function call(id: number | string, name: string, args: Record<string, unknown> = {}) {
  return { jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } };
}

function screen(body: unknown): McpRequestVerdict {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  return screenMcpRequestBody(Buffer.from(text), ALLOWED);
}

function answer(verdict: McpRequestVerdict): { status: number; body: unknown; outcome: string } {
  if (verdict.kind !== "answer") throw new Error("expected the request to be answered");
  return { status: verdict.status, body: JSON.parse(verdict.body), outcome: verdict.outcome };
}

function forwarded(verdict: McpRequestVerdict): { body: unknown; toolsListIds: unknown[] } {
  if (verdict.kind !== "forward") throw new Error("expected the request to be forwarded");
  return { body: JSON.parse(verdict.body.toString()), toolsListIds: [...verdict.toolsListIds] };
}

const notAllowed = (id: number | string, tool: string) => ({
  jsonrpc: "2.0",
  id,
  error: { code: -32602, message: "tool not allowed by Keyway policy", data: { tool } },
});

describe("screenMcpRequestBody", () => {
  it("forwards a call to an allowed tool", () => {
    const body = call(1, "list_issues", { team: "ENG" });
    expect(forwarded(screen(body))).toEqual({ body, toolsListIds: [] });
  });

  it("answers a call to a tool outside the list with a JSON-RPC error for its id", () => {
    expect(answer(screen(call("req-7", "delete_issue", { id: "ENG-1" })))).toEqual({
      status: 200,
      body: notAllowed("req-7", "delete_issue"),
      outcome: "mcp_tool_denied",
    });
  });

  it("refuses a whole batch with a refused call, answering each request in it", () => {
    const batch = [
      call(1, "list_issues"),
      {
        jsonrpc: "2.0",
        method: "notifications/progress",
        params: { progressToken: 1, progress: 1 },
      },
      call(2, "delete_issue"),
      { jsonrpc: "2.0", id: 3, method: "tools/list" },
    ];
    const refused = answer(screen(batch));
    expect(refused.status).toBe(200);
    expect(refused.outcome).toBe("mcp_tool_denied");
    expect(refused.body).toEqual([
      { jsonrpc: "2.0", id: 1, error: { code: -32600, message: expect.stringContaining("batch") } },
      notAllowed(2, "delete_issue"),
      { jsonrpc: "2.0", id: 3, error: { code: -32600, message: expect.stringContaining("batch") } },
    ]);
  });

  it("forwards a batch of allowed messages and notes its tools/list ids", () => {
    const batch = [
      { jsonrpc: "2.0", id: "a", method: "tools/list" },
      call("b", "get_issue", { id: "ENG-1" }),
      { jsonrpc: "2.0", method: "notifications/initialized" },
      { jsonrpc: "2.0", id: 9, result: {} },
    ];
    expect(forwarded(screen(batch))).toEqual({ body: batch, toolsListIds: ["a"] });
  });

  it("forwards the body as checked, so duplicate keys cannot mean two things", () => {
    const sneaky =
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_issue","name":"get_issue"}}';
    expect(forwarded(screen(sneaky)).body).toEqual({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: { name: "get_issue" },
    });
    const refused =
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_issue","name":"delete_issue"}}';
    expect(answer(screen(refused)).outcome).toBe("mcp_tool_denied");
  });

  it("answers a tools/call whose params fail the SDK schema with invalid params", () => {
    expect(answer(screen({ jsonrpc: "2.0", id: 4, method: "tools/call", params: {} }))).toEqual({
      status: 200,
      body: {
        jsonrpc: "2.0",
        id: 4,
        error: { code: -32602, message: "Invalid params for tools/call" },
      },
      outcome: "mcp_tool_denied",
    });
  });

  it.each([
    ["not JSON", "tools/call delete_issue", -32700],
    ["empty", "", -32700],
    ["an empty batch", [], -32600],
    ["JSON but not JSON-RPC", { method: "tools/call", params: { name: "delete_issue" } }, -32600],
    ["a message with unknown members", { ...call(1, "get_issue"), extra: true }, -32600],
    [
      "a tools/call notification",
      { jsonrpc: "2.0", method: "tools/call", params: { name: "x" } },
      -32600,
    ],
  ])("refuses a body that is %s with 400", (_name, body, code) => {
    const refused = answer(screen(body));
    expect(refused.status).toBe(400);
    expect(refused.outcome).toBe("mcp_invalid_message");
    expect(refused.body).toEqual({
      jsonrpc: "2.0",
      id: null,
      error: { code, message: expect.any(String) },
    });
  });
});

const TOOLS = ["list_issues", "get_issue", "delete_issue"].map((name) => ({
  name,
  description: `${name} tool`,
  inputSchema: { type: "object", properties: {} },
  annotations: { title: name },
}));

function toolsListResponse(id: number | string, tools: unknown[] = TOOLS) {
  return { jsonrpc: "2.0", id, result: { tools, nextCursor: "page-2", _meta: { x: 1 } } };
}

describe("filterToolsListText", () => {
  it("removes tools outside the list from the result of a tools/list request, keeping the rest", () => {
    const text = JSON.stringify(toolsListResponse(5));
    const filtered = filterToolsListText(text, ALLOWED, new Set([5]));
    expect(JSON.parse(filtered ?? "null")).toEqual(
      toolsListResponse(
        5,
        TOOLS.filter((tool) => tool.name !== "delete_issue"),
      ),
    );
  });

  it("leaves responses to other requests, and lists of allowed tools only, as they are", () => {
    expect(filterToolsListText(JSON.stringify(toolsListResponse(6)), ALLOWED, new Set([5]))).toBe(
      null,
    );
    const allowedOnly = toolsListResponse(5, TOOLS.slice(0, 2));
    expect(filterToolsListText(JSON.stringify(allowedOnly), ALLOWED, new Set([5]))).toBe(null);
    expect(filterToolsListText("not json", ALLOWED, "any")).toBe(null);
  });

  it("filters every tools/list result of a batch response", () => {
    const text = JSON.stringify([
      toolsListResponse("x"),
      { jsonrpc: "2.0", id: "y", result: { content: [] } },
    ]);
    const filtered: unknown = JSON.parse(filterToolsListText(text, ALLOWED, new Set(["x"])) ?? "");
    expect(filtered).toEqual([
      toolsListResponse(
        "x",
        TOOLS.filter((tool) => tool.name !== "delete_issue"),
      ),
      { jsonrpc: "2.0", id: "y", result: { content: [] } },
    ]);
  });

  it("recognizes tools/list results by shape when the requests are unknown", () => {
    const filtered = filterToolsListText(JSON.stringify(toolsListResponse(99)), ALLOWED, "any");
    expect(
      JSON.parse(filtered ?? "null").result.tools.map((t: { name: string }) => t.name),
    ).toEqual(["list_issues", "get_issue"]);
  });

  it("replaces a tools/list result it cannot validate with a JSON-RPC error", () => {
    const broken = toolsListResponse(5, [{ name: "delete_issue" }]);
    expect(JSON.parse(filterToolsListText(JSON.stringify(broken), ALLOWED, "any") ?? "")).toEqual({
      jsonrpc: "2.0",
      id: 5,
      error: { code: -32603, message: expect.stringContaining("could not be checked") },
    });
  });
});

describe("tools/list filtering on an event stream", () => {
  const listResult = JSON.stringify(toolsListResponse(2));
  const stream = Buffer.from(
    [
      'event: message\nid: e1\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":0.5,"message":"ünïcode"}}\n\n',
      ": keep-alive\r\n\r\n",
      `event: message\r\nid: e2\r\ndata: ${listResult}\r\n\r\n`,
    ].join(""),
  );

  function filtered(chunks: readonly Buffer[]): string {
    const rewriter = createSseRewriter(
      (data) => filterToolsListText(data, ALLOWED, new Set([2])),
      1 << 20,
    );
    return chunks.map((chunk) => rewriter.push(chunk)).join("") + rewriter.end();
  }

  it("rewrites the tools/list result and relays the other events as they came", () => {
    const out = filtered([stream]);
    const untouched = stream.toString().slice(0, stream.toString().indexOf("event: message\r\n"));
    expect(out.startsWith(untouched)).toBe(true);
    const list = out.slice(untouched.length);
    expect(list.startsWith("event: message\nid: e2\ndata: ")).toBe(true);
    expect(list.endsWith("\n\n")).toBe(true);
    const data = JSON.parse(list.slice("event: message\nid: e2\ndata: ".length));
    expect(data.result.tools.map((tool: { name: string }) => tool.name)).toEqual([
      "list_issues",
      "get_issue",
    ]);
    expect(data.result.nextCursor).toBe("page-2");
  });

  it("gives the same output at every chunk boundary, mid-character and mid-CRLF included", () => {
    const whole = filtered([stream]);
    for (let i = 1; i < stream.length; i++) {
      expect(filtered([stream.subarray(0, i), stream.subarray(i)])).toBe(whole);
    }
    for (let size = 2; size < 40; size += 7) {
      const pieces: Buffer[] = [];
      for (let i = 0; i < stream.length; i += size) pieces.push(stream.subarray(i, i + size));
      expect(filtered(pieces)).toBe(whole);
    }
  });
});
