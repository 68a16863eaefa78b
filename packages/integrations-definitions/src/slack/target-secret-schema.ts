import { z } from "zod";

export const slackTargetSecretSchema = z.strictObject({
  /** Slack app client secret for the token endpoint (absent for a PKCE public client). */
  clientSecret: z.string().min(1).optional(),
  /** The app's signing secret, which signs Events API requests. */
  signingSecret: z.string().min(1).optional(),
});

export type SlackTargetSecrets = z.infer<typeof slackTargetSecretSchema>;
