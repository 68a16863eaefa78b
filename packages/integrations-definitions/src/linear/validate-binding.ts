import type { BindingContext, BindingIssue } from "@keyway/integrations-core";
import type { LinearBindingConfig } from "./binding-config-schema";

/** Linear team keys are upper-case letters and digits, starting with a letter (`ENG`, `WEB2`). */
const TEAM_KEY = /^[A-Z][A-Z0-9]*$/;

export function validateLinearBinding(
  ctx: BindingContext<unknown, unknown, LinearBindingConfig>,
): BindingIssue[] {
  const issues: BindingIssue[] = [];
  const { mcpToolAllowlist, teamKeys } = ctx.binding.config;

  for (const [i, key] of (teamKeys ?? []).entries()) {
    if (!TEAM_KEY.test(key)) {
      issues.push({
        code: "linear.invalid_team_key",
        field: `teamKeys.${i}`,
        message: `team key ${JSON.stringify(key)} is not a Linear team key (upper-case letters and digits, e.g. ENG)`,
      });
    }
  }
  issues.push(...duplicates(teamKeys, "teamKeys", "linear.duplicate_team_key", "team key"));
  issues.push(
    ...duplicates(mcpToolAllowlist, "mcpToolAllowlist", "linear.duplicate_mcp_tool", "MCP tool"),
  );
  return issues;
}

function duplicates(
  values: readonly string[] | undefined,
  field: string,
  code: string,
  what: string,
): BindingIssue[] {
  const seen = new Set<string>();
  const issues: BindingIssue[] = [];
  for (const [i, value] of (values ?? []).entries()) {
    if (seen.has(value)) {
      issues.push({ code, field: `${field}.${i}`, message: `${what} ${value} is listed twice` });
    }
    seen.add(value);
  }
  return issues;
}
