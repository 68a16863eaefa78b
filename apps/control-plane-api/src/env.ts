import type { Database } from "@keyway/db";
import type { Context as TraceContext } from "@keyway/observability";
import type { Principal } from "./auth/principal";

/** Hono context variables set by middleware. */
export interface AppEnv {
  Variables: {
    requestId: string;
    /** When the request's answer is due, on the `performance.now()` clock (`request-deadline.ts`). */
    deadline: number;
    /**
     * The request's database: the handle's, with transactions bound by `deadline` (they never
     * commit after it). Request code begins transactions on this one only.
     */
    db: Database;
    principal: Principal;
    gatewayId: string;
    /**
     * The W3C trace id of the request (from its `traceparent`, or of its span when traces are
     * exported); undefined when the caller sent none and nothing is exported.
     */
    traceId: string | undefined;
    /** The request's span as a parent for child spans; undefined when traces are off. */
    traceContext: TraceContext | undefined;
  };
}
