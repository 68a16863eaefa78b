import type { AppModules } from "./app";
import { auditRoutes } from "./audit/routes";
import { connectionRoutes } from "./connections/routes";
import { internalRoutes } from "./internal/routes";
import { organizationRoutes } from "./organizations/routes";
import { profileRoutes } from "./profiles/routes";
import { sessionRoutes } from "./sessions/routes";
import { targetRoutes } from "./targets/routes";
import { webhookIngestRoutes } from "./webhooks/ingest-routes";

/**
 * Every router of the API, in one list (add a resource here and nowhere else).
 */
export const apiModules: AppModules = {
  public: [
    organizationRoutes,
    connectionRoutes,
    targetRoutes,
    auditRoutes,
    profileRoutes,
    sessionRoutes,
  ],
  internal: [internalRoutes],
  open: [webhookIngestRoutes],
};
