import {
  type BindingContext,
  type CompileBindingOutput,
  type RuntimeFileDraft,
  splitBaseUrl,
} from "@keyway/integrations-core";
import type { AnthropicBindingConfig } from "./binding-config-schema";
import { CLAUDE_CODE_CLIENT_ID, CLAUDE_CODE_MCP_FILE_ID } from "./claude-code-mcp-config";
import { ANTHROPIC_DEFAULT_API_BASE_URL, type AnthropicTargetConfig } from "./target-config-schema";

/**
 * Not a secret. Claude Code sends `ANTHROPIC_API_KEY` as `x-api-key`; the gateway drops the
 * client's value (and any `Authorization`) on the route and injects the real key.
 */
export const CLAUDE_CODE_API_KEY_PLACEHOLDER = "keyway-placeholder-anthropic-api-key";

/**
 * In interactive mode Claude Code asks once before using an `ANTHROPIC_API_KEY` and records the
 * answer in `~/.claude.json` under `customApiKeyResponses.approved`, keyed by the key's last 20
 * characters (Claude Code env-vars docs describe the one-time approval; the recorded shape is what
 * Claude Code writes itself). Pre-approving the placeholder keeps that prompt away.
 */
export const CLAUDE_CODE_APPROVED_KEY_SUFFIX = CLAUDE_CODE_API_KEY_PLACEHOLDER.slice(-20);

export function compileAnthropicBinding(
  input: BindingContext<AnthropicTargetConfig, unknown, AnthropicBindingConfig>,
): CompileBindingOutput {
  const { model, instructions } = input.binding.config;
  const { origin, host, pathPrefix } = splitBaseUrl(input.target.config.apiBaseUrl);
  const apiBaseUrl = pathPrefix === "/" ? origin : `${origin}${pathPrefix}`;

  const files: RuntimeFileDraft[] = [
    {
      fileId: "settings",
      root: "home",
      path: ".claude/settings.json",
      format: "json",
      data: {
        model,
        // Project `.mcp.json` servers otherwise wait for an interactive approval (Claude Code
        // settings docs, `enableAllProjectMcpServers`); Keyway wrote that file itself.
        enableAllProjectMcpServers: true,
        env: {
          // Telemetry, error reporting and update checks go to hosts no route names; the
          // sandbox egress policy may deny them, so Claude Code is told not to try.
          CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
        },
      },
    },
    {
      fileId: "state",
      root: "home",
      path: ".claude.json",
      format: "json",
      data: {
        hasCompletedOnboarding: true,
        customApiKeyResponses: { approved: [CLAUDE_CODE_APPROVED_KEY_SUFFIX], rejected: [] },
        // Claude Code asks "do you trust this folder?" for a directory unless it or a parent is
        // recorded with `hasTrustDialogAccepted` (checked with Claude Code 2.1.332). The plan
        // cannot know where the sandbox puts its workspace, so the root is trusted: this file
        // lives in the sandbox's own home, and Keyway wrote the workspace's agent config itself.
        projects: { "/": { hasTrustDialogAccepted: true } },
      },
    },
    {
      fileId: CLAUDE_CODE_MCP_FILE_ID,
      root: "workspace",
      path: ".mcp.json",
      format: "json",
      data: { mcpServers: {} },
    },
  ];
  if (instructions !== undefined) {
    // User memory: Claude Code loads `~/.claude/CLAUDE.md` into every session (memory docs).
    files.push({
      fileId: "instructions",
      root: "home",
      path: ".claude/CLAUDE.md",
      format: "text",
      text: instructions.endsWith("\n") ? instructions : `${instructions}\n`,
    });
  }

  return {
    routes: [
      {
        match: { hosts: [host], pathPrefixes: [pathPrefix] },
        upstream: { baseUrl: origin },
        // Claude Code sends `anthropic-version` on every request itself, so the route only
        // supplies the key. `NODE_EXTRA_CA_CERTS` (the gateway CA for this Node client) is set
        // by the sandbox launcher for every process, not by this definition.
        auth: { type: "header", name: "x-api-key" },
        credential: { secretType: "api_key" },
      },
    ],
    runtimeClients: [
      {
        clientId: CLAUDE_CODE_CLIENT_ID,
        files,
        env: {
          ANTHROPIC_API_KEY: CLAUDE_CODE_API_KEY_PLACEHOLDER,
          // The gateway intercepts the canonical host, so only a non-default API URL needs telling.
          ...(apiBaseUrl !== ANTHROPIC_DEFAULT_API_BASE_URL
            ? { ANTHROPIC_BASE_URL: apiBaseUrl }
            : {}),
        },
      },
    ],
    agentRuntimes: [
      { clientId: CLAUDE_CODE_CLIENT_ID, displayName: "Claude Code", command: ["claude"] },
    ],
  };
}
