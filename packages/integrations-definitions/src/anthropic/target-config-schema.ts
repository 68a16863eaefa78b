import { httpBaseUrlSchema } from "@keyway/integrations-core";
import { z } from "zod";

export const ANTHROPIC_DEFAULT_API_BASE_URL = "https://api.anthropic.com";

/** Model ids and Claude Code's aliases (`sonnet`, `opus`, `sonnet[1m]`) alike. */
export const anthropicModelIdSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._:@/[\]-]*$/,
    "model id holds letters, digits and . _ : @ / [ ] - only",
  );

/** Current Claude models as listed by Anthropic's models overview when this was written. */
export function defaultAnthropicModels(): string[] {
  return ["claude-opus-4-6", "claude-sonnet-4-6", "claude-sonnet-4-5", "claude-haiku-4-5"];
}

export const anthropicTargetConfigSchema = z.strictObject({
  apiBaseUrl: httpBaseUrlSchema.default(ANTHROPIC_DEFAULT_API_BASE_URL),
  models: z.array(anthropicModelIdSchema).min(1).default(defaultAnthropicModels),
});

export type AnthropicTargetConfig = z.infer<typeof anthropicTargetConfigSchema>;
