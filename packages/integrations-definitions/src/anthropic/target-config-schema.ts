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

/** Claude Code's `sonnet` alias for the Anthropic API; the model the docs and examples bind. */
export const ANTHROPIC_DEFAULT_MODEL = "claude-sonnet-5-5";

/**
 * The newest model of each family in Claude Code 2.1.332's model catalog (`latest_per_family`;
 * its `opus`, `sonnet`, `haiku` and `fable` aliases resolve to these for the Anthropic API), then
 * the previous Opus and Sonnet, which are not retired. Claude Code accepts any id here; an id it
 * knows gets its context window and effort settings right. `claude-model-catalog.test.ts` fails
 * when the installed Claude Code no longer carries one of them.
 */
export function defaultAnthropicModels(): string[] {
  return [
    ANTHROPIC_DEFAULT_MODEL,
    "claude-opus-5-5",
    "claude-haiku-5-5",
    "claude-fable-5-2",
    "claude-sonnet-5",
    "claude-opus-5",
  ];
}

export const anthropicTargetConfigSchema = z.strictObject({
  apiBaseUrl: httpBaseUrlSchema.default(ANTHROPIC_DEFAULT_API_BASE_URL),
  models: z.array(anthropicModelIdSchema).min(1).default(defaultAnthropicModels),
});

export type AnthropicTargetConfig = z.infer<typeof anthropicTargetConfigSchema>;
