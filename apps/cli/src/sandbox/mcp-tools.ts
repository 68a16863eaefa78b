import type { McpServer } from "@keyway/integrations-core";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ProxyAgent, fetch as undiciFetch } from "undici";
import { caBundle, systemRootsPem } from "./ca-bundle";
import type { StartedSession } from "./environment";

/** One MCP server of a plan and the tools its allow-list leaves visible (`--json` shape). */
export interface McpServerTools {
  name: string;
  url?: string;
  tools: { name: string; description?: string }[];
  /** Why the tools could not be listed (stdio server, unreachable, refused). */
  error?: string;
}

/**
 * Lists the tools of every MCP server of a session's plan by asking each server itself with the
 * MCP SDK client, through the gateway as a sandbox would (proxy credential, gateway CA). The
 * gateway filters `tools/list` by the binding's allow-list, so what comes back is exactly what
 * an agent in that sandbox sees. stdio servers run inside the sandbox and are not started here.
 */
export async function listMcpTools(
  session: Pick<StartedSession, "proxyEnv" | "caCertPem">,
  servers: readonly McpServer[],
): Promise<McpServerTools[]> {
  const proxy = session.proxyEnv.HTTPS_PROXY ?? session.proxyEnv.HTTP_PROXY;
  if (proxy === undefined) throw new Error("the session has no proxy URL");
  const agent = new ProxyAgent({
    uri: proxy,
    // Plain-HTTP servers go as absolute-form requests, as curl and Python send them.
    proxyTunnel: false,
    requestTls: { ca: caBundle((await systemRootsPem()).pem, session.caCertPem) },
  });
  try {
    const results: McpServerTools[] = [];
    for (const server of servers) {
      if (server.transport !== "streamable-http") {
        results.push({
          name: server.name,
          tools: [],
          error: "stdio server: runs inside the sandbox",
        });
        continue;
      }
      results.push(await listServerTools(server.name, server.url, server.headers, agent));
    }
    return results;
  } finally {
    await agent.close();
  }
}

async function listServerTools(
  name: string,
  url: string,
  headers: Record<string, string> | undefined,
  agent: ProxyAgent,
): Promise<McpServerTools> {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    ...(headers !== undefined ? { requestInit: { headers } } : {}),
    // The SDK sends JSON text bodies only; undici's fetch takes the proxy agent as dispatcher.
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
  const client = new Client({ name: "keyway-mcp-tools", version: "1.0.0" });
  try {
    await client.connect(transport);
    const tools: McpServerTools["tools"] = [];
    let cursor: string | undefined;
    do {
      const page = await client.listTools(cursor !== undefined ? { cursor } : {});
      for (const tool of page.tools) {
        tools.push({
          name: tool.name,
          ...(tool.description ? { description: tool.description } : {}),
        });
      }
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    return { name, url, tools };
  } catch (error) {
    return { name, url, tools: [], error: error instanceof Error ? error.message : String(error) };
  } finally {
    await client.close().catch(() => {});
  }
}
