import { credentialSecretSchema, multiLineSecretSchema } from "@keyway/integrations-core";
import { z } from "zod";

/**
 * Operator-owned GitHub App secrets. Every field is optional on its own because each flow needs a
 * different subset, and a target used only with personal access tokens needs none:
 *
 * - installation tokens (`github_app_installation_token` resolver): `appPrivateKeyPem` and the
 *   JWT issuer — `clientId` (preferred by GitHub on GitHub.com) or `appId` (GHES, and the
 *   GitHub.com fallback);
 * - installation connect (ownership check with "request user authorization during
 *   installation"): `clientId` and `clientSecret`;
 * - webhook ingest: `webhookSecret`.
 */
export const githubTargetSecretSchema = z.strictObject({
  appId: z
    .string()
    .regex(/^[0-9]+$/, "app id is the numeric id from the app's settings page")
    .optional(),
  /** The app private key as downloaded from GitHub (PKCS#1 `BEGIN RSA PRIVATE KEY`) or PKCS#8. */
  appPrivateKeyPem: multiLineSecretSchema.optional(),
  clientId: credentialSecretSchema.optional(),
  clientSecret: credentialSecretSchema.optional(),
  webhookSecret: credentialSecretSchema.optional(),
});

export type GitHubTargetSecrets = z.infer<typeof githubTargetSecretSchema>;
