import type { BindingContext, BindingIssue } from "@keyway/integrations-core";
import type { OpenaiBindingConfig } from "./binding-config-schema";
import type { OpenaiTargetConfig } from "./target-config-schema";

/** The binding's model must be in the target's table, and its effort allowed for that model. */
export function validateOpenaiBinding(
  ctx: BindingContext<OpenaiTargetConfig, unknown, OpenaiBindingConfig>,
): BindingIssue[] {
  const { model, reasoningEffort } = ctx.binding.config;
  const models = ctx.target.config.models;
  // `Object.hasOwn`, not `in`: a model id such as "constructor" must not match Object.prototype.
  const entry = Object.hasOwn(models, model) ? models[model] : undefined;
  if (!entry) {
    return [
      {
        code: "openai.unknown_model",
        field: "model",
        message: `model ${model} is not offered by target ${ctx.target.targetKey}`,
      },
    ];
  }
  if (reasoningEffort !== undefined && !entry.reasoningEfforts.includes(reasoningEffort)) {
    const allowed = entry.reasoningEfforts.length > 0 ? entry.reasoningEfforts.join(", ") : "none";
    return [
      {
        code: "openai.unsupported_reasoning_effort",
        field: "reasoningEffort",
        message: `model ${model} does not support reasoning effort ${reasoningEffort} (allowed: ${allowed})`,
      },
    ];
  }
  return [];
}
