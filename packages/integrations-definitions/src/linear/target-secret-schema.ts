import { credentialSecretSchema } from "@keyway/integrations-core";
import { z } from "zod";

/** Operator-held Linear secrets; both optional so an API-key-only target needs none. */
export const linearTargetSecretSchema = z.strictObject({
  /** OAuth2 application client secret, sent to the token endpoint. */
  clientSecret: credentialSecretSchema.optional(),
  /** Signing secret of the Linear webhook (or of the OAuth application's webhook). */
  webhookSecret: credentialSecretSchema.optional(),
});

export type LinearTargetSecrets = z.infer<typeof linearTargetSecretSchema>;
