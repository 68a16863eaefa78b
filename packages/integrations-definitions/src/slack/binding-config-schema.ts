import { singleLineTextSchema } from "@keyway/integrations-core";
import { z } from "zod";

export const slackBindingConfigSchema = z.strictObject({
  /**
   * Channel agents should post to unless told otherwise: an id (`C0123ABCD`) or `#name`.
   * Advisory: shown to users and agents; the Web API route itself is not limited to it.
   */
  defaultChannel: singleLineTextSchema.min(1).optional(),
});

export type SlackBindingConfig = z.infer<typeof slackBindingConfigSchema>;
