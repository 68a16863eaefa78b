import type { AppInstallationBehaviour } from "@keyway/integrations-core";
import { appJwtIssuer } from "./app-jwt";
import { createInstallationToken, installationScope } from "./installation-token-resolver";
import { installUrl, verifyInstallationOwnership } from "./installation-verification";
import type { GitHubTargetConfig } from "./target-config";
import type { GitHubTargetSecrets } from "./target-secret-schema";

/** Lifecycle of an installation connection by event type (webhook "installation" events). */
const LIFECYCLE: Readonly<Record<string, "deleted" | "suspended" | "restored" | "changed">> = {
  "github.installation.deleted": "deleted",
  "github.installation.suspend": "suspended",
  "github.installation.unsuspend": "restored",
  "github.installation.new_permissions_accepted": "changed",
  "github.installation_repositories.added": "changed",
  "github.installation_repositories.removed": "changed",
};

/**
 * GitHub App installation connections (SPEC §5 github). The setup redirect's `installation_id` is
 * accepted only when the user who returned with the `code` ("Request user authorization (OAuth)
 * during installation") can access it; tokens are then minted with the app JWT per use.
 */
export const githubAppInstallation: AppInstallationBehaviour<
  GitHubTargetConfig,
  GitHubTargetSecrets,
  unknown
> = {
  missingSetup(target) {
    const missing: string[] = [];
    if (target.config.appSlug === undefined) {
      missing.push("set the target config's appSlug (the app's URL name)");
    }
    if (target.secrets.clientId === undefined || target.secrets.clientSecret === undefined) {
      missing.push(
        "set the target secrets clientId and clientSecret (they verify who installed the app)",
      );
    }
    if (
      target.secrets.appPrivateKeyPem === undefined ||
      appJwtIssuer(target.config, target.secrets) === undefined
    ) {
      missing.push(
        "set the target secrets appPrivateKeyPem and appId or clientId (they mint tokens)",
      );
    }
    return missing;
  },

  installUrl(target, state) {
    return installUrl(target, state);
  },

  verifyInstallation(ctx) {
    return verifyInstallationOwnership(ctx);
  },

  connectionCredential: {
    resolve(ctx) {
      return createInstallationToken({
        target: ctx.target,
        installationId: ctx.connection.externalSubjectId,
        fetch: ctx.fetch,
        clock: ctx.clock,
      });
    },
    cacheScope: (ctx) => installationScope(ctx),
  },

  lifecycleOf(eventType) {
    return LIFECYCLE[eventType];
  },
};
