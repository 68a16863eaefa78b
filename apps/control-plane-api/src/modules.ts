import type { AppModules } from "./app";
import { organizationRoutes } from "./organizations/routes";

/**
 * Every router of the API, in one list (add a resource here and nowhere else).
 */
export const apiModules: AppModules = {
  public: [organizationRoutes],
  internal: [],
  open: [],
};
