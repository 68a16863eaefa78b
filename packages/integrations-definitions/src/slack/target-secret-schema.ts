import { credentialSecretSchema } from "@keyway/integrations-core";
import { z } from "zod";

export const slackTargetSecretSchema = z.strictObject({
  /** Slack app client secret for the token endpoint (absent for a PKCE public client). */
  clientSecret: credentialSecretSchema.optional(),
  /** The app's signing secret, which signs Events API requests. */
  signingSecret: credentialSecretSchema.optional(),
});

export type SlackTargetSecrets = z.infer<typeof slackTargetSecretSchema>;
