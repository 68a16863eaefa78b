import { httpBaseUrlSchema } from "@keyway/integrations-core";
import { z } from "zod";

/**
 * Reasoning efforts Codex accepts for `model_reasoning_effort` (its config schema's
 * `ReasoningEffort` enum; `max` and `ultra` arrived with the GPT-6 models, Codex 0.171.0). Which
 * of them a model supports differs per model, hence the per-model table below.
 */
export const openaiReasoningEffortSchema = z.enum([
  "none",
  "minimal",
  "low",
  "medium",
  "high",
  "xhigh",
  "max",
  "ultra",
]);

export type OpenaiReasoningEffort = z.infer<typeof openaiReasoningEffortSchema>;

/** Model ids as OpenAI spells them, fine-tunes included (`ft:gpt-4o:org::id`). */
export const openaiModelIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, "model id holds letters, digits and . _ : / - only");

const modelEntrySchema = z.strictObject({
  reasoningEfforts: z.array(openaiReasoningEffortSchema),
});

/** Codex's first choice (priority 1 in its catalog); the model the docs and examples bind. */
export const OPENAI_DEFAULT_MODEL = "gpt-6.2-sol";

const UP_TO_ULTRA: OpenaiReasoningEffort[] = ["low", "medium", "high", "xhigh", "max", "ultra"];
const UP_TO_MAX: OpenaiReasoningEffort[] = ["low", "medium", "high", "xhigh", "max"];

/**
 * The models Codex 0.171.0 lists (`codex debug models --bundled`: `visibility: "list"`,
 * `supported_in_api: true`), in its priority order, each with exactly its
 * `supported_reasoning_levels`. A binding naming a model Codex does not know makes Codex warn
 * and fall back to generic model settings, so this table follows the Codex release Keyway tests
 * against; `codex-model-catalog.test.ts` fails when the installed Codex stops listing one of them.
 * Operators extend or replace it in target config as OpenAI ships models.
 */
export function defaultOpenaiModels(): Record<
  string,
  { reasoningEfforts: OpenaiReasoningEffort[] }
> {
  return {
    [OPENAI_DEFAULT_MODEL]: { reasoningEfforts: [...UP_TO_ULTRA] },
    "gpt-6.2-astra": { reasoningEfforts: [...UP_TO_ULTRA] },
    "gpt-6.1-terra": { reasoningEfforts: [...UP_TO_ULTRA] },
    "gpt-6.1-sol": { reasoningEfforts: [...UP_TO_ULTRA] },
    "gpt-6-astra": { reasoningEfforts: [...UP_TO_ULTRA] },
    "gpt-6-sol": { reasoningEfforts: [...UP_TO_ULTRA] },
    "gpt-6-luna": { reasoningEfforts: [...UP_TO_MAX] },
    "gpt-5.6-sol": { reasoningEfforts: [...UP_TO_ULTRA] },
    "gpt-5.6-terra": { reasoningEfforts: [...UP_TO_ULTRA] },
    "gpt-5.6-luna": { reasoningEfforts: [...UP_TO_MAX] },
    "gpt-5.5": { reasoningEfforts: ["low", "medium", "high", "xhigh"] },
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
