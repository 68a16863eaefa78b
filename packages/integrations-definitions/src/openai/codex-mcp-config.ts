import type { JsonObject, McpConfigTarget, McpServer } from "@keyway/integrations-core";

export const CODEX_CLIENT_ID = "codex-cli";
export const CODEX_CONFIG_FILE_ID = "config";

/**
 * One `[mcp_servers.<name>]` table in Codex's `config.toml`, in the keys Codex documents
 * (openai/codex `docs/config.md` "MCP integration" and `RawMcpServerConfig` in
 * `codex-rs/core/config.schema.json`): `url` + `http_headers` for streamable HTTP, `command` +
 * `args` + `env` for stdio.
 */
export function renderCodexMcpServer(server: McpServer): JsonObject {
  if (server.transport === "streamable-http") {
    const headers = server.headers ?? {};
    return Object.keys(headers).length > 0
      ? { url: server.url, http_headers: { ...headers } }
      : { url: server.url };
  }
  return { command: server.command, args: [...server.args], env: { ...server.env } };
}

export const codexMcpConfig: McpConfigTarget = {
  clientId: CODEX_CLIENT_ID,
  fileId: CODEX_CONFIG_FILE_ID,
  format: "toml",
  path: ["mcp_servers"],
  renderServer: renderCodexMcpServer,
};
