import { GatewayAssertionError } from "@keyway/crypto";
import type { MiddlewareHandler } from "hono";
import type { AppDeps } from "../deps";
import type { AppEnv } from "../env";
import { unauthorized } from "./principal";

/**
 * Internal API callers are gateways presenting a fresh client assertion signed by their own key
 * (`Authorization: Bearer <assertion>`); each gateway has its own identity and trusted key.
 */
export function authenticateGateway(deps: AppDeps): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header("authorization");
    const token = header?.startsWith("Bearer ") ? header.slice(7).trim() : undefined;
    if (!token) throw unauthorized("missing gateway assertion");
    try {
      const verified = await deps.gatewayVerifier.verify(token);
      c.set("gatewayId", verified.gatewayId);
    } catch (error) {
      if (error instanceof GatewayAssertionError) throw unauthorized("invalid gateway assertion");
      throw error;
    }
    await next();
  };
}
