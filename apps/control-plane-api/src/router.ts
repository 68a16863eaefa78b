import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "./env";
import { badRequest, zodFieldIssues } from "./errors";
import { fieldPrefix, type InputLocation, inputTextIssues } from "./input-text";

/**
 * Every resource builds its routes on a router from here, so request validation fails the same
 * way everywhere: 400 `invalid_request` with field-level issues (SPEC §10). Each validated part of
 * a request (path parameters, query, JSON body) first passes the text check (`input-text.ts`) on
 * its raw form, then its zod schema; issues of both are reported together, one per field.
 */
export function createRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: async (result, c) => {
      const location = validatedLocation(result.target);
      if (location === undefined) return;
      const issues = inputTextIssues(location, await rawInput(location, c));
      if (!result.success) {
        const flagged = new Set(issues.map((issue) => issue.field));
        for (const issue of zodFieldIssues(result.error, fieldPrefix(location))) {
          if (!flagged.has(issue.field)) issues.push(issue);
        }
      }
      if (issues.length > 0) {
        throw badRequest(
          "invalid_request",
          "the request does not match the expected shape",
          issues,
        );
      }
    },
  });
}

function validatedLocation(target: string): InputLocation | undefined {
  return target === "json" || target === "param" || target === "query" ? target : undefined;
}

/**
 * The part as the client sent it, before any schema trimmed or dropped something. The validator
 * has read a JSON body already (Hono caches its text, so reading it again is cheap); a request
 * whose body the validator did not read is checked as `{}`, as the validator saw it.
 */
async function rawInput(location: InputLocation, c: Context<AppEnv>): Promise<unknown> {
  if (location === "param") return c.req.param();
  if (location === "query") return c.req.queries();
  return c.req.bodyCache.text === undefined ? {} : c.req.json();
}

/** Standard error responses for the OpenAPI document. */
export const errorResponses = {
  400: { description: "Invalid request (field-level issues in `error.details.issues`)" },
  401: { description: "Missing or invalid credentials" },
  403: { description: "Role does not allow this" },
  404: { description: "Not found (also for ids of other organizations)" },
} as const;
