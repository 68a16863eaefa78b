import type { Principal } from "./auth/principal";

/** Hono context variables set by middleware. */
export interface AppEnv {
  Variables: {
    requestId: string;
    principal: Principal;
    gatewayId: string;
  };
}
