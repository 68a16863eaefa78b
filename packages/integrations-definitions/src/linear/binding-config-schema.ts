import { singleLineTextSchema } from "@keyway/integrations-core";
import { z } from "zod";

export const linearBindingConfigSchema = z.strictObject({
  /**
   * MCP tools the sandbox may call on Linear's MCP server; absent means every tool. The gateway
   * enforces it on `tools/call` and filters `tools/list`.
   */
  mcpToolAllowlist: z.array(singleLineTextSchema.min(1)).min(1).optional(),
  /**
   * Team keys (e.g. `ENG`) the binding is meant for. Advisory: shown to users and agents, not
   * enforced, because GraphQL names teams inside request bodies the gateway does not rewrite.
   */
  teamKeys: z.array(singleLineTextSchema.min(1)).min(1).optional(),
});

export type LinearBindingConfig = z.infer<typeof linearBindingConfigSchema>;
