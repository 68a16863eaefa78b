import { httpBaseUrlSchema } from "@keyway/integrations-core";
import { z } from "zod";

/**
 * Reasoning efforts Codex accepts for `model_reasoning_effort` (its config schema's
 * `ReasoningEffort` enum, openai/codex `codex-rs/core/config.schema.json`). Which of them a model
 * supports differs per model, hence the per-model table below.
 */
export const openaiReasoningEffortSchema = z.enum([
  "none",
  "minimal",
  "low",
  "medium",
  "high",
  "xhigh",
]);

export type OpenaiReasoningEffort = z.infer<typeof openaiReasoningEffortSchema>;

/** Model ids as OpenAI spells them, fine-tunes included (`ft:gpt-4o:org::id`). */
export const openaiModelIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, "model id holds letters, digits and . _ : / - only");

const modelEntrySchema = z.strictObject({
  reasoningEfforts: z.array(openaiReasoningEffortSchema),
});

/**
 * Codex-capable models and their efforts, as published when this table was written: GPT-5.2-Codex
 * and GPT-5.1-Codex-Max support low…xhigh, GPT-5.1-Codex-Mini medium and high. Operators extend
 * or replace it in target config as OpenAI ships models.
 */
export function defaultOpenaiModels(): Record<
  string,
  { reasoningEfforts: OpenaiReasoningEffort[] }
> {
  return {
    "gpt-5.2-codex": { reasoningEfforts: ["low", "medium", "high", "xhigh"] },
    "gpt-5.1-codex-max": { reasoningEfforts: ["low", "medium", "high", "xhigh"] },
    "gpt-5.1-codex-mini": { reasoningEfforts: ["medium", "high"] },
  };
}

export const OPENAI_DEFAULT_API_BASE_URL = "https://api.openai.com/v1";

export const openaiTargetConfigSchema = z.strictObject({
  apiBaseUrl: httpBaseUrlSchema.default(OPENAI_DEFAULT_API_BASE_URL),
  models: z
    .record(openaiModelIdSchema, modelEntrySchema)
    .refine((models) => Object.keys(models).length > 0, "at least one model is required")
    .default(defaultOpenaiModels),
});

export type OpenaiTargetConfig = z.infer<typeof openaiTargetConfigSchema>;
