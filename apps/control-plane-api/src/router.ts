import { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "./env";
import { badRequest, zodFieldIssues } from "./errors";

/**
 * Every resource builds its routes on a router from here, so request validation fails the same
 * way everywhere: 400 `invalid_request` with field-level issues (SPEC §10).
 */
export function createRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        throw badRequest(
          "invalid_request",
          "the request does not match the expected shape",
          zodFieldIssues(result.error),
        );
      }
    },
  });
}

/** Standard error responses for the OpenAPI document. */
export const errorResponses = {
  400: { description: "Invalid request (field-level issues in `error.details.issues`)" },
  401: { description: "Missing or invalid credentials" },
  403: { description: "Role does not allow this" },
  404: { description: "Not found (also for ids of other organizations)" },
} as const;
