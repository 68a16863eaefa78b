import type { AppModules } from "./app";
import { auditRoutes } from "./audit/routes";
import { githubAppCallbackRoutes, githubAppRoutes } from "./connections/github-app-routes";
import { OAUTH2_CALLBACK_PATH } from "./connections/oauth2-flow";
import { oauth2CallbackRoutes, oauth2StartRoutes } from "./connections/oauth2-routes";
import { connectionRoutes } from "./connections/routes";
import { internalRoutes } from "./internal/routes";
import { organizationRoutes } from "./organizations/routes";
import { profileRoutes } from "./profiles/routes";
import { sessionRoutes } from "./sessions/routes";
import { targetRoutes } from "./targets/routes";
import { webhookEventRoutes } from "./webhooks/events-routes";
import { webhookIngest } from "./webhooks/ingest-routes";
import { webhookSubscriptionRoutes } from "./webhooks/subscriptions-routes";

/**
 * Every router of the API, in one list (add a resource here and nowhere else).
 */
export const apiModules: AppModules = {
  public: [
    organizationRoutes,
    oauth2StartRoutes,
    // Before the connection routes: `github-app/…` is not a connection id.
    githubAppRoutes,
    connectionRoutes,
    targetRoutes,
    auditRoutes,
    profileRoutes,
    sessionRoutes,
    webhookSubscriptionRoutes,
    webhookEventRoutes,
  ],
  internal: [internalRoutes],
  open: [oauth2CallbackRoutes, githubAppCallbackRoutes],
  frontDoors: [webhookIngest],
  unauthenticatedPaths: [OAUTH2_CALLBACK_PATH],
};
