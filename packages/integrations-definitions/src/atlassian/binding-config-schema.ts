import { singleLineTextSchema } from "@keyway/integrations-core";
import { z } from "zod";

export const atlassianBindingConfigSchema = z.strictObject({
  /** Rovo MCP tools the agent may call; absent = every tool the credential can reach. */
  mcpToolAllowlist: z.array(singleLineTextSchema.min(1)).min(1).optional(),
});

export type AtlassianBindingConfig = z.infer<typeof atlassianBindingConfigSchema>;
