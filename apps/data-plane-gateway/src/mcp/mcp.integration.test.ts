import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import {
  createTestCa,
  type RunningServer,
  startHttpsServer,
  type TestCa,
} from "@keyway/test-harness";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest, McpError } from "@modelcontextprotocol/sdk/types.js";
import { ProxyAgent, request, fetch as undiciFetch } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { startTestControlPlane, type TestControlPlane } from "../testing/control-plane-stack";
import { curl, testPlan, testRoute } from "../testing/fixtures";
import { startTestGateway, type TestGateway } from "../testing/test-gateway";

/**
 * The official MCP SDK client, through the gateway, against the SDK's MCP server on a local HTTPS
 * upstream: routes with an MCP tool allow-list list and run only the allowed tools.
 */

const SECRET = "lin_api_secret_0123456789";
const ALLOWED = ["list_issues", "get_issue"];

interface SeenRequest {
  path: string;
  method: string;
  authorization: string | undefined;
  acceptEncoding: string | undefined;
  /** The JSON-RPC messages of the body, as the upstream parsed them. */
  messages: unknown[];
}

let cp: TestControlPlane;
let gatewayCa: TestCa;
let upstreamCa: TestCa;
let upstream: RunningServer;
let gw: TestGateway;
let proxyToken: string;
let sessionToken: string;
let caDir: string;
let agent: ProxyAgent;
const seen: SeenRequest[] = [];
const deleted: string[] = [];
const transports = new Map<string, StreamableHTTPServerTransport>();

function issueServer(): McpServer {
  const server = new McpServer({ name: "issues", version: "1.0.0" });
  server.registerTool(
    "list_issues",
    { description: "List issues", inputSchema: { team: z.string().optional() } },
    async ({ team }) => ({
      content: [{ type: "text", text: JSON.stringify([{ id: `${team ?? "ENG"}-1` }]) }],
    }),
  );
  server.registerTool(
    "get_issue",
    { description: "Get an issue", inputSchema: { id: z.string() } },
    async ({ id }) => ({ content: [{ type: "text", text: `issue ${id}` }] }),
  );
  server.registerTool(
    "delete_issue",
    { description: "Delete an issue", inputSchema: { id: z.string() } },
    async ({ id }) => {
      deleted.push(id);
      return { content: [{ type: "text", text: `deleted ${id}` }] };
    },
  );
  return server;
}

const TOOLS_LIST_RESULT = {
  jsonrpc: "2.0",
  id: 1,
  result: {
    tools: ["list_issues", "get_issue", "delete_issue"].map((name) => ({
      name,
      inputSchema: { type: "object" },
    })),
  },
};

/** Writes `text` a few bytes at a time, each piece its own TCP write, cut mid-line and mid-CRLF. */
async function writeInPieces(res: ServerResponse, text: string): Promise<void> {
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i += 7) {
    res.write(bytes.subarray(i, i + 7));
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

async function upstreamHandler(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString("utf8");
  const body: unknown = text === "" ? undefined : JSON.parse(text);
  const path = req.url ?? "/";
  seen.push({
    path,
    method: req.method ?? "",
    authorization: req.headers.authorization,
    acceptEncoding: req.headers["accept-encoding"],
    messages: body === undefined ? [] : Array.isArray(body) ? body : [body],
  });

  if (path === "/legacy/sse") {
    // A GET stream (as the legacy SSE transport sends every response): a tools/list result
    // among other events, with CRLF line ends, split into small writes.
    res.writeHead(200, { "content-type": "text/event-stream" });
    await writeInPieces(
      res,
      `event: endpoint\r\ndata: /legacy/messages\r\n\r\n: ping\r\n\r\nevent: message\r\ndata: ${JSON.stringify(TOOLS_LIST_RESULT)}\r\n\r\n`,
    );
    res.end();
    return;
  }
  if (path === "/big-json/mcp" || path === "/big-sse/mcp") {
    // A tools/list result past the 4 MiB the gateway buffers or holds per event.
    const big = JSON.stringify({
      ...TOOLS_LIST_RESULT,
      result: {
        tools: [
          {
            name: "list_issues",
            description: "x".repeat(5 * 1024 * 1024),
            inputSchema: { type: "object" },
          },
        ],
      },
    });
    if (path === "/big-json/mcp") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(big);
    } else {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(": started\n\n");
      res.end(`data: ${big}\n\n`);
    }
    return;
  }
  if (path === "/gzip/mcp") {
    const gz = gzipSync(JSON.stringify(TOOLS_LIST_RESULT));
    res.writeHead(200, {
      "content-type": "application/json",
      "content-encoding": "gzip",
      "content-length": gz.length,
    });
    res.end(gz);
    return;
  }

  const sessionId = req.headers["mcp-session-id"];
  let transport = typeof sessionId === "string" ? transports.get(sessionId) : undefined;
  if (transport === undefined) {
    if (req.method !== "POST" || !isInitializeRequest(body)) {
      res.writeHead(400, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          jsonrpc: "2.0",
          id: null,
          error: { code: -32000, message: "no session" },
        }),
      );
      return;
    }
    const created = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      enableJsonResponse: path === "/json/mcp",
      onsessioninitialized: (id) => {
        transports.set(id, created);
      },
    });
    transport = created;
    await issueServer().connect(created);
  }
  await transport.handleRequest(req, res, body);
}

beforeAll(async () => {
  cp = await startTestControlPlane();
  gatewayCa = await createTestCa({ commonName: "Keyway Gateway Test CA" });
  upstreamCa = await createTestCa({ commonName: "MCP Upstream Test CA" });
  upstream = await startHttpsServer(upstreamHandler, { ca: upstreamCa });
  const bearer = { type: "bearer", name: "authorization", scheme: "Bearer" } as const;
  const plan = testPlan([
    {
      ...testRoute("r_mcp", "mcp.example.test", upstream.url, bearer),
      mcp: { toolAllowlist: ALLOWED },
    },
    testRoute("r_open", "open-mcp.example.test", upstream.url, bearer),
  ]);
  await cp.setCredential("r_mcp", { value: SECRET });
  await cp.setCredential("r_open", { value: SECRET });
  sessionToken = await cp.issueToken({ sessionId: "sess_mcp", planDigest: await cp.addPlan(plan) });
  proxyToken = `Basic ${Buffer.from(`session:${sessionToken}`).toString("base64")}`;
  gw = await startTestGateway({ controlPlane: cp, gatewayCa, upstreamCa });
  agent = new ProxyAgent({
    uri: gw.proxyUrl,
    token: proxyToken,
    requestTls: { ca: gatewayCa.certPem },
  });
});

afterAll(async () => {
  await agent?.close();
  await Promise.all([...transports.values()].map((transport) => transport.close()));
  await gw?.close();
  await upstream?.close();
  await cp?.close();
  if (caDir) await rm(caDir, { recursive: true, force: true });
});

async function connectClient(url: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    // undici's fetch (Node 20's built-in one is an older undici) through the proxy agent. The
    // SDK sends JSON text bodies only.
    fetch: (input, init) => {
      const body = init?.body;
      if (body != null && typeof body !== "string") throw new Error("expected a text body");
      return undiciFetch(input, {
        method: init?.method ?? "GET",
        headers: Object.fromEntries(new Headers(init?.headers)),
        body,
        signal: init?.signal ?? null,
        dispatcher: agent,
      });
    },
  });
  const client = new Client({ name: "sandbox-agent", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

function toolCallsSeen(): string[] {
  const names: string[] = [];
  for (const request of seen) {
    for (const message of request.messages) {
      const parsed = z
        .object({ method: z.literal("tools/call"), params: z.object({ name: z.string() }) })
        .safeParse(message);
      if (parsed.success) names.push(parsed.data.params.name);
    }
  }
  return names;
}

describe.each([
  ["an event stream", "https://mcp.example.test/mcp"],
  ["JSON", "https://mcp.example.test/json/mcp"],
])("an allow-listed MCP route answering with %s", (_mode, url) => {
  let client: Client;

  beforeAll(async () => {
    client = await connectClient(url);
  });

  afterAll(async () => {
    await client?.close();
  });

  it("lists only the allowed tools", async () => {
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(["get_issue", "list_issues"]);
  });

  it("runs an allowed tool with the injected credential", async () => {
    const before = seen.length;
    const result = await client.callTool({ name: "list_issues", arguments: { team: "OPS" } });
    expect(result.content).toEqual([{ type: "text", text: JSON.stringify([{ id: "OPS-1" }]) }]);
    const call = seen.slice(before).find((r) => r.messages.length > 0);
    expect(call?.authorization).toBe(`Bearer ${SECRET}`);
  });

  it("refuses a tool outside the list without the upstream seeing the call", async () => {
    const refusal = client.callTool({ name: "delete_issue", arguments: { id: "ENG-1" } });
    await expect(refusal).rejects.toBeInstanceOf(McpError);
    await expect(refusal).rejects.toMatchObject({
      code: -32602,
      message: expect.stringContaining("tool not allowed by Keyway policy"),
    });
    expect(toolCallsSeen()).not.toContain("delete_issue");
    expect(deleted).toEqual([]);
    const logged = gw.logger.lines.map((line) => JSON.parse(line));
    expect(logged).toContainEqual(
      expect.objectContaining({ routeId: "r_mcp", status: 200, outcome: "mcp_tool_denied" }),
    );
  });
});

describe("routes without an allow-list", () => {
  it("pass MCP traffic through untouched", async () => {
    const client = await connectClient("https://open-mcp.example.test/mcp");
    try {
      const { tools } = await client.listTools();
      expect(tools.map((tool) => tool.name).sort()).toEqual([
        "delete_issue",
        "get_issue",
        "list_issues",
      ]);
    } finally {
      await client.close();
    }
  });
});

describe("raw JSON-RPC on an allow-listed route", () => {
  async function post(path: string, body: string | Buffer, headers: Record<string, string> = {}) {
    const response = await request(`https://mcp.example.test${path}`, {
      dispatcher: agent,
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json", ...headers },
      body,
    });
    return { status: response.statusCode, body: await response.body.json() };
  }

  it("answers a batch with a refused call as a whole and forwards none of it", async () => {
    const before = seen.length;
    const batch = [
      { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "get_issue", arguments: {} } },
      { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "delete_issue" } },
    ];
    const answer = await post("/mcp", JSON.stringify(batch));
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual([
      { jsonrpc: "2.0", id: 1, error: { code: -32600, message: expect.stringContaining("batch") } },
      {
        jsonrpc: "2.0",
        id: 2,
        error: {
          code: -32602,
          message: "tool not allowed by Keyway policy",
          data: { tool: "delete_issue" },
        },
      },
    ]);
    expect(seen.length).toBe(before);
  });

  it("refuses a body that is not JSON-RPC with a 400 parse error", async () => {
    const before = seen.length;
    const answer = await post("/mcp", "call delete_issue please");
    expect(answer).toEqual({
      status: 400,
      body: { jsonrpc: "2.0", id: null, error: { code: -32700, message: expect.any(String) } },
    });
    expect(seen.length).toBe(before);
  });

  it("refuses a body over 1 MiB with 413", async () => {
    const before = seen.length;
    const padding = "x".repeat(1024 * 1024);
    const body = JSON.stringify({
      jsonrpc: "2.0",
      id: 3,
      method: "tools/call",
      params: { name: "get_issue", arguments: { padding } },
    });
    const answer = await post("/mcp", body);
    expect(answer.status).toBe(413);
    expect(answer.body).toMatchObject({ jsonrpc: "2.0", id: null, error: { code: -32600 } });
    expect(seen.length).toBe(before);
  });

  it("answers 502 when a tools/list response cannot be read (compressed)", async () => {
    const before = seen.length;
    const answer = await post(
      "/gzip/mcp",
      JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
      { "accept-encoding": "gzip" },
    );
    expect(answer).toEqual({
      status: 502,
      body: { jsonrpc: "2.0", id: null, error: { code: -32603, message: expect.any(String) } },
    });
    // The gateway asked for an uncompressed answer, whatever the client accepts.
    expect(seen.slice(before).map((r) => r.acceptEncoding)).toEqual(["identity"]);
  });

  it("answers 502 when a JSON tools/list response is too large to check", async () => {
    const answer = await post(
      "/big-json/mcp",
      JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    );
    expect(answer).toEqual({
      status: 502,
      body: { jsonrpc: "2.0", id: null, error: { code: -32603, message: expect.any(String) } },
    });
  });

  it("cuts an event stream whose event is too large to check", async () => {
    const response = await request("https://mcp.example.test/big-sse/mcp", {
      dispatcher: agent,
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    expect(response.statusCode).toBe(200);
    await expect(response.body.text()).rejects.toThrow();
  });

  it("filters tools/list results in a GET event stream split into small pieces", async () => {
    const response = await request("https://mcp.example.test/legacy/sse", {
      dispatcher: agent,
      headers: { accept: "text/event-stream" },
    });
    expect(response.statusCode).toBe(200);
    const text = await response.body.text();
    // Events without a tool list leave as they came; the rewritten one keeps its `event:` line.
    expect(text.startsWith("event: endpoint\r\ndata: /legacy/messages\r\n\r\n: ping\r\n\r\n")).toBe(
      true,
    );
    const data = /event: message\ndata: (.*)\n\n$/.exec(text)?.[1];
    expect(JSON.parse(data ?? "null")).toEqual({
      ...TOOLS_LIST_RESULT,
      result: { tools: TOOLS_LIST_RESULT.result.tools.filter((t) => t.name !== "delete_issue") },
    });
  });

  it("refuses a connection upgrade, whose frames it could not check", async () => {
    caDir = await mkdtemp(join(tmpdir(), "keyway-mcp-test-"));
    const caPath = join(caDir, "gateway-ca.pem");
    await writeFile(caPath, gatewayCa.certPem);
    const before = seen.length;
    const result = await curl([
      "--proxy",
      gw.proxyUrlFor(sessionToken),
      "--cacert",
      caPath,
      "-H",
      "Connection: Upgrade",
      "-H",
      "Upgrade: websocket",
      "-H",
      "Sec-WebSocket-Version: 13",
      "-H",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
      "https://mcp.example.test/mcp",
    ]);
    expect(result.status).toBe(403);
    expect(JSON.parse(result.body)).toMatchObject({ error: { code: "policy_denied" } });
    expect(seen.length).toBe(before);
  });
});
