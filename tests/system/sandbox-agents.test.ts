import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyway } from "./support/keyway-cli";
import { type McpUpstream, startMcpUpstream } from "./support/mcp-upstream";
import {
  createApiKeyConnection,
  createOrganization,
  type RecordingUpstream,
  type Stack,
  startRecordingUpstream,
  startStack,
  stringAt,
} from "./support/stack";

/**
 * The real agent CLIs from npm (`@openai/codex`, `@anthropic-ai/claude-code`, devDependencies)
 * started by `keyway sandbox run` read Keyway's generated files and need no interactive step:
 * Codex and Claude Code list the plan's MCP server, Claude Code in a terminal shows no trust or
 * API-key prompt, and Codex's model request goes through the gateway to a loopback upstream
 * with the stored key injected. Nothing but `keyway`'s environment reaches them.
 */

const ANSI_ESCAPE = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, "g");
const OPENAI_KEY = "sk-openai-agents-test-7e21";
const ANTHROPIC_KEY = "sk-ant-agents-test-4c90";
const MCP_KEY = "sk-mcp-agents-test-0b33";

let stack: Stack;
let openai: RecordingUpstream;
let anthropic: RecordingUpstream;
let mcp: McpUpstream;
let orgToken: string;

beforeAll(async () => {
  stack = await startStack("sandbox-agents");
  openai = await startRecordingUpstream();
  anthropic = await startRecordingUpstream();
  mcp = await startMcpUpstream();
  const op = stack.operatorToken;
  await stack.apiOk(op, "PATCH", "/v1/operator/targets/openai", {
    config: { apiBaseUrl: `${openai.url}/v1` },
  });
  await stack.apiOk(op, "POST", "/v1/operator/targets/openai/enable");
  await stack.apiOk(op, "PATCH", "/v1/operator/targets/anthropic", {
    config: { apiBaseUrl: anthropic.url },
  });
  await stack.apiOk(op, "POST", "/v1/operator/targets/anthropic/enable");
  await stack.apiOk(op, "POST", "/v1/operator/targets", {
    targetKey: "issues-api",
    variantId: "http-api",
    config: { baseUrl: `${mcp.url}/api`, mcpServerUrl: `${mcp.url}/mcp`, mcpServerName: "issues" },
  });

  orgToken = await createOrganization(stack, "Agents Org");
  const connect = (targetKey: string, apiKey: string) =>
    createApiKeyConnection(stack, orgToken, { targetKey, secrets: { apiKey } });
  const profile = await stack.apiOk(orgToken, "POST", "/v1/sandbox-profiles", { name: "agents" });
  await stack.apiOk(orgToken, "POST", `/v1/sandbox-profiles/${stringAt(profile, "id")}/versions`, {
    bindings: [
      {
        connectionId: await connect("openai", OPENAI_KEY),
        kind: "agent",
        config: { model: "gpt-6.2-sol" },
      },
      {
        connectionId: await connect("anthropic", ANTHROPIC_KEY),
        kind: "agent",
        config: { model: "claude-sonnet-5-5" },
      },
      { connectionId: await connect("issues-api", MCP_KEY), kind: "connector", config: {} },
    ],
  });
});

afterAll(async () => {
  await Promise.all([openai?.close(), anthropic?.close(), mcp?.close()]);
  await stack?.close();
});

function sandboxRun(command: readonly string[]) {
  return keyway(["sandbox", "run", "--profile", "agents", "--", ...command], {
    KEYWAY_URL: stack.apiUrl,
    KEYWAY_TOKEN: orgToken,
  });
}

describe("Codex", () => {
  it("lists the plan's MCP server (codex mcp list --json)", async () => {
    const result = await sandboxRun(["codex", "mcp", "list", "--json"]);
    expect(result.exitCode, result.stderr).toBe(0);
    const servers = JSON.parse(result.stdout) as { name: string; transport?: { url?: string } }[];
    expect(servers.map((s) => s.name)).toEqual(["issues"]);
    expect(JSON.stringify(servers[0])).toContain(`${mcp.url}/mcp`);
  });

  it("sends its model request through the gateway, the stored key injected", async () => {
    const result = await sandboxRun([
      "timeout",
      "60",
      "codex",
      "exec",
      "--skip-git-repo-check",
      "Say hello.",
    ]);
    // The stand-in upstream answers with JSON that is no model response, so Codex gives up;
    // what matters is what reached it.
    const requests = openai.received.filter((r) => r.url.startsWith("/v1/responses"));
    expect(requests.length, result.stderr).toBeGreaterThan(0);
    for (const request of requests) {
      expect(request.method).toBe("POST");
      expect(request.headers.authorization).toBe(`Bearer ${OPENAI_KEY}`);
      expect(JSON.stringify(request.rawHeaders)).not.toContain("keyway-placeholder");
      expect(JSON.parse(request.body).model).toBe("gpt-6.2-sol");
    }
    expect(result.stdout + result.stderr).not.toContain(OPENAI_KEY);
    // Codex 0.171.0 warns "Model metadata for `<model>` not found" for a model its catalog lacks
    // (as it did for the earlier default gpt-5.2-codex).
    expect(result.stdout + result.stderr).not.toContain("Model metadata for");
  });
});

describe("Claude Code", () => {
  it("shows the plan's MCP server (claude mcp list), reached through the gateway", async () => {
    const before = mcp.authorizations.length;
    const result = await sandboxRun(["claude", "mcp", "list"]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain("issues");
    expect(result.stdout).toContain(`${mcp.url}/mcp`);
    // Its health check connects to the server: through the gateway, with the key injected.
    const seen = mcp.authorizations.slice(before);
    expect(seen.length).toBeGreaterThan(0);
    expect(new Set(seen)).toEqual(new Set([`Bearer ${MCP_KEY}`]));
  });

  it("starts in a terminal without a trust or API-key prompt", async () => {
    // `script` gives Claude Code a PTY; `timeout` ends the interactive session.
    const result = await sandboxRun(["timeout", "25", "script", "-qc", "claude", "/dev/null"]);
    // The TUI moves the cursor instead of writing spaces: compare without escapes and spaces.
    const screen = result.stdout.replace(ANSI_ESCAPE, "").replace(/\s+/g, "");
    expect(screen).not.toMatch(/trustthisfolder/i);
    expect(screen).not.toMatch(/DoyouwanttousethisAPIkey/i);
    expect(screen).not.toContain(ANTHROPIC_KEY);
  });
});
