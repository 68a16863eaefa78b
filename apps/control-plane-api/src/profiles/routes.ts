import { createRoute, z } from "@hono/zod-openapi";
import { requireRole } from "../auth/principal";
import type { AppDeps } from "../deps";
import { createRouter, errorResponses } from "../router";
import {
  createProfileBody,
  createVersionBody,
  diffQuery,
  planDiffResponseSchema,
  planResponseSchema,
  profileParams,
  profileSchema,
  updateProfileBody,
  versionParams,
  versionSchema,
  versionSummarySchema,
} from "./schemas";
import {
  compileProfileVersion,
  createProfile,
  createProfileVersion,
  deleteProfile,
  diffProfileVersions,
  getProfile,
  getProfileVersion,
  listProfiles,
  listProfileVersions,
  updateProfile,
} from "./service";

const json = <T extends z.ZodType>(schema: T) => ({ content: { "application/json": { schema } } });
const security = [{ bearer: [] }];
const tags = ["sandbox-profiles"];
const conflictResponse = { 409: { description: "Conflict (code in `error.code`)" } } as const;
const compileErrorResponse = {
  422: {
    description:
      "The bindings do not compile: `error.code` is the first compile error code (connection_not_found, target_disabled, connection_not_active, route_conflict, invalid_binding_config, ...); `error.details.errors` lists every error with its bindings (`bindings.N`), `error.details.issues` the field-level issues",
  },
} as const;

/**
 * `/v1/sandbox-profiles` (SPEC §6.2): members create profiles and versions, viewers read,
 * admins delete. Versions are immutable: there is deliberately no route that changes one.
 */
export function profileRoutes(deps: AppDeps) {
  const router = createRouter();
  const compileDeps = { clock: deps.clock, registry: deps.registry };

  router.openapi(
    createRoute({
      method: "post",
      path: "/v1/sandbox-profiles",
      tags,
      security,
      request: { body: { ...json(createProfileBody), required: true } },
      responses: {
        201: { description: "Created", ...json(profileSchema) },
        ...errorResponses,
        ...conflictResponse,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "member");
      return c.json(await createProfile(db, deps.clock, principal, c.req.valid("json")), 201);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/sandbox-profiles",
      tags,
      security,
      responses: {
        200: {
          description: "The organization's profiles",
          ...json(z.object({ items: z.array(profileSchema) })),
        },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "viewer");
      return c.json({ items: await listProfiles(db, principal.organizationId) }, 200);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/sandbox-profiles/{id}",
      tags,
      security,
      request: { params: profileParams },
      responses: { 200: { description: "The profile", ...json(profileSchema) }, ...errorResponses },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "viewer");
      return c.json(await getProfile(db, principal.organizationId, c.req.valid("param").id), 200);
    },
  );

  router.openapi(
    createRoute({
      method: "patch",
      path: "/v1/sandbox-profiles/{id}",
      tags,
      security,
      request: { params: profileParams, body: { ...json(updateProfileBody), required: true } },
      responses: {
        200: { description: "Updated", ...json(profileSchema) },
        ...errorResponses,
        ...conflictResponse,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "member");
      const updated = await updateProfile(
        db,
        deps.clock,
        principal,
        c.req.valid("param").id,
        c.req.valid("json"),
      );
      return c.json(updated, 200);
    },
  );

  router.openapi(
    createRoute({
      method: "delete",
      path: "/v1/sandbox-profiles/{id}",
      tags,
      security,
      description:
        "Deletes the profile, its versions and its ended sessions. 409 `profile_in_use` while live sessions use it.",
      request: { params: profileParams },
      responses: { 204: { description: "Deleted" }, ...errorResponses, ...conflictResponse },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "admin");
      await deleteProfile(db, deps.clock, principal, c.req.valid("param").id);
      return c.body(null, 204);
    },
  );

  router.openapi(
    createRoute({
      method: "post",
      path: "/v1/sandbox-profiles/{id}/versions",
      tags,
      security,
      description:
        "Creates the next immutable version. Bindings are validated and the whole version compiled before anything is written.",
      request: { params: profileParams, body: { ...json(createVersionBody), required: true } },
      responses: {
        201: { description: "Created", ...json(versionSchema) },
        ...errorResponses,
        ...compileErrorResponse,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "member");
      const created = await createProfileVersion(
        { ...compileDeps, db },
        principal,
        c.req.valid("param").id,
        c.req.valid("json"),
      );
      return c.json(created, 201);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/sandbox-profiles/{id}/versions",
      tags,
      security,
      request: { params: profileParams },
      responses: {
        200: {
          description: "Versions, oldest first",
          ...json(z.object({ items: z.array(versionSummarySchema) })),
        },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "viewer");
      const items = await listProfileVersions(
        db,
        principal.organizationId,
        c.req.valid("param").id,
      );
      return c.json({ items }, 200);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/sandbox-profiles/{id}/versions/{v}",
      tags,
      security,
      request: { params: versionParams },
      responses: {
        200: { description: "The version with its bindings", ...json(versionSchema) },
        ...errorResponses,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "viewer");
      const { id, v } = c.req.valid("param");
      return c.json(await getProfileVersion(db, principal.organizationId, id, v), 200);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/sandbox-profiles/{id}/versions/{v}/plan",
      tags,
      security,
      description:
        "Compiles the version against the current connections and targets; the plan is stored by digest.",
      request: { params: versionParams },
      responses: {
        200: { description: "The compiled plan and its digest", ...json(planResponseSchema) },
        ...errorResponses,
        ...compileErrorResponse,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "viewer");
      const { id, v } = c.req.valid("param");
      const compiled = await compileProfileVersion(
        db,
        deps.registry,
        principal.organizationId,
        id,
        v,
      );
      return c.json(compiled, 200);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/v1/sandbox-profiles/{id}/versions/{v}/diff",
      tags,
      security,
      description: "Capability change from version `against` to version `v` (SPEC §4.4).",
      request: { params: versionParams, query: diffQuery },
      responses: {
        200: { description: "The plan diff", ...json(planDiffResponseSchema) },
        ...errorResponses,
        ...compileErrorResponse,
      },
    }),
    async (c) => {
      const db = c.get("db");
      const principal = requireRole(c.get("principal"), "viewer");
      const { id, v } = c.req.valid("param");
      const diff = await diffProfileVersions(
        db,
        deps.registry,
        principal.organizationId,
        id,
        v,
        c.req.valid("query").against,
      );
      return c.json(diff, 200);
    },
  );

  return router;
}
