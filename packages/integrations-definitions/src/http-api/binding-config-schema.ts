import {
  httpMethodSchema,
  pathPrefixSchema,
  singleLineTextSchema,
} from "@keyway/integrations-core";
import { z } from "zod";

/** Optional narrowing of what one binding may reach; each list must lie within the target's. */
export const httpApiBindingConfigSchema = z.strictObject({
  /** Paths this binding may call, each under one of the target's path prefixes. */
  pathPrefixes: z.array(pathPrefixSchema).min(1).optional(),
  /** Methods this binding may use, a subset of the target's allowed methods. */
  methods: z.array(httpMethodSchema).min(1).optional(),
  /** MCP tools the agent may call on the target's MCP server; absent = every tool. */
  mcpToolAllowlist: z.array(singleLineTextSchema.min(1)).min(1).optional(),
});

export type HttpApiBindingConfig = z.infer<typeof httpApiBindingConfigSchema>;
