import { z } from "zod";
import { anthropicModelIdSchema } from "./target-config-schema";

export const anthropicBindingConfigSchema = z.strictObject({
  model: anthropicModelIdSchema,
  /** Extra instructions for the agent; plain text, not a secret. */
  instructions: z.string().trim().min(1).max(32_768).optional(),
});

export type AnthropicBindingConfig = z.infer<typeof anthropicBindingConfigSchema>;
