import type { BindingContext, BindingIssue } from "@keyway/integrations-core";
import type { AnthropicBindingConfig } from "./binding-config-schema";
import type { AnthropicTargetConfig } from "./target-config-schema";

/** The binding's model must be one the target allows. */
export function validateAnthropicBinding(
  ctx: BindingContext<AnthropicTargetConfig, unknown, AnthropicBindingConfig>,
): BindingIssue[] {
  const { model } = ctx.binding.config;
  if (ctx.target.config.models.includes(model)) return [];
  return [
    {
      code: "anthropic.unknown_model",
      field: "model",
      message: `model ${model} is not offered by target ${ctx.target.targetKey}`,
    },
  ];
}
