import { z } from "zod";
import { openaiModelIdSchema, openaiReasoningEffortSchema } from "./target-config-schema";

export const openaiBindingConfigSchema = z.strictObject({
  model: openaiModelIdSchema,
  reasoningEffort: openaiReasoningEffortSchema.optional(),
  /** Extra developer instructions for the agent; plain text, not a secret. */
  instructions: z.string().trim().min(1).max(32_768).optional(),
});

export type OpenaiBindingConfig = z.infer<typeof openaiBindingConfigSchema>;
