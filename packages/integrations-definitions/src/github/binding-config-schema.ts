import { z } from "zod";

/**
 * A GitHub binding: the repositories a sandbox may reach and the permissions its installation
 * token is narrowed to.
 *
 * `permissions` defaults to `{ contents: "read", metadata: "read" }`: clone and fetch only, the
 * least a git binding is useful with. Writing (push, pull requests, issues) is opted into per
 * permission, e.g. `{ contents: "write", pull_requests: "write", metadata: "read" }`.
 * For GitHub App installations the token is narrowed to exactly these permissions; a personal
 * access token keeps its own scopes, and for it the binding's permissions only decide whether the
 * git push endpoint is routed (`contents: "write"`).
 *
 * Repository format and permission names are checked by `validateGitHubBinding`, so the issues
 * carry `github.*` codes and per-entry fields.
 */
export const githubBindingConfigSchema = z.strictObject({
  /** `owner/repo`, at most 500 (the most one installation token can be narrowed to). */
  repositories: z.array(z.string()).min(1).max(500),
  permissions: z
    .record(z.string(), z.enum(["read", "write"]))
    .default(() => ({ contents: "read" as const, metadata: "read" as const })),
});

export type GitHubBindingConfig = z.infer<typeof githubBindingConfigSchema>;
