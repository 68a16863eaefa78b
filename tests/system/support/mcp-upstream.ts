import type { IncomingMessage, ServerResponse } from "node:http";
import { type RunningServer, startHttpServer } from "@keyway/test-harness";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";

export interface McpUpstream extends RunningServer {
  /** The Authorization header of every request, in order. */
  authorizations: (string | undefined)[];
  /** Names of the tools that ran. */
  toolCalls: string[];
}

/**
 * A stateless Streamable HTTP MCP server on loopback (plain HTTP, path `/mcp`) with three tools
 * (`list_issues`, `get_issue`, `delete_issue`); it records each request's Authorization and each
 * tool that ran.
 */
export async function startMcpUpstream(): Promise<McpUpstream> {
  const authorizations: (string | undefined)[] = [];
  const toolCalls: string[] = [];
  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    authorizations.push(req.headers.authorization);
    if (req.method !== "POST") {
      res.writeHead(405).end();
      return;
    }
    const server = new McpServer({ name: "issues", version: "1.0.0" });
    for (const name of ["list_issues", "get_issue", "delete_issue"]) {
      server.registerTool(name, { description: `${name} tool` }, async () => {
        toolCalls.push(name);
        return { content: [{ type: "text", text: `${name} ran` }] };
      });
    }
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on("close", () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res);
  };
  return { ...(await startHttpServer(handler)), authorizations, toolCalls };
}
