import type { JsonObject, McpConfigTarget, McpServer } from "@keyway/integrations-core";

export const CLAUDE_CODE_CLIENT_ID = "claude-code";
export const CLAUDE_CODE_MCP_FILE_ID = "mcp";

/**
 * One entry of a project `.mcp.json` in Claude Code's shape (Claude Code docs, "Connect Claude
 * Code to tools via MCP"): `type: "http"` with `url` and `headers` for remote servers,
 * `type: "stdio"` with `command`, `args` and `env` for local ones.
 */
export function renderClaudeCodeMcpServer(server: McpServer): JsonObject {
  if (server.transport === "streamable-http") {
    const headers = server.headers ?? {};
    return Object.keys(headers).length > 0
      ? { type: "http", url: server.url, headers: { ...headers } }
      : { type: "http", url: server.url };
  }
  return { type: "stdio", command: server.command, args: [...server.args], env: { ...server.env } };
}

export const claudeCodeMcpConfig: McpConfigTarget = {
  clientId: CLAUDE_CODE_CLIENT_ID,
  fileId: CLAUDE_CODE_MCP_FILE_ID,
  format: "json",
  path: ["mcpServers"],
  renderServer: renderClaudeCodeMcpServer,
};
