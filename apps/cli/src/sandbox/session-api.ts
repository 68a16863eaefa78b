import {
  type StartedSandboxSession,
  startedSessionSchema,
} from "@keyway/control-plane-api/sessions/schemas";
import { compiledPlanSchema, type McpServer } from "@keyway/integrations-core";
import { z } from "zod";

/**
 * The few API calls `keyway sandbox` makes (start, plan, revoke), kept local to the sandbox
 * commands; the resource commands' API client can replace it. Responses are validated with the
 * API's own schemas. Errors carry the API's error code and message, never a token.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ApiTarget {
  /** `KEYWAY_URL`: the control-plane API's base URL. */
  url: string;
  /** `KEYWAY_TOKEN`: an organization API token. */
  token: string;
}

const errorBodySchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
const profileListSchema = z.object({
  items: z.array(z.object({ id: z.string(), name: z.string(), latestVersion: z.number() })),
});
const planResponseSchema = z.object({ digest: z.string(), plan: compiledPlanSchema });

export interface SessionApi {
  startSession(profile: string, version?: number): Promise<StartedSandboxSession>;
  mcpServers(session: StartedSandboxSession): Promise<McpServer[]>;
  revokeSession(id: string): Promise<void>;
}

export function sessionApi(target: ApiTarget): SessionApi {
  async function call(method: string, path: string, body?: unknown): Promise<unknown> {
    let response: Response;
    try {
      response = await fetch(new URL(path, target.url), {
        method,
        headers: {
          authorization: `Bearer ${target.token}`,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (error) {
      const reason = error instanceof Error && error.cause instanceof Error ? error.cause : error;
      throw new ApiError(0, "api_unreachable", `cannot reach ${target.url}: ${String(reason)}`);
    }
    const text = await response.text();
    const parsed: unknown = text === "" ? undefined : safeJson(text);
    if (!response.ok) {
      const error = errorBodySchema.safeParse(parsed);
      throw error.success
        ? new ApiError(response.status, error.data.error.code, error.data.error.message)
        : new ApiError(response.status, "http_error", `${method} ${path}: HTTP ${response.status}`);
    }
    return parsed;
  }

  /** The id of the organization's profile with this id, else with this name. */
  async function profileId(profile: string): Promise<string> {
    const { items } = profileListSchema.parse(await call("GET", "/v1/sandbox-profiles"));
    const found = items.find((p) => p.id === profile) ?? items.find((p) => p.name === profile);
    if (!found)
      throw new ApiError(404, "profile_not_found", `no sandbox profile named "${profile}"`);
    return found.id;
  }

  return {
    async startSession(profile, version) {
      const body = { profileId: await profileId(profile), ...(version ? { version } : {}) };
      return startedSessionSchema.parse(await call("POST", "/v1/sandbox-sessions", body));
    },
    async mcpServers(session) {
      const path = `/v1/sandbox-profiles/${session.profileId}/versions/${session.profileVersion}/plan`;
      return planResponseSchema.parse(await call("GET", path)).plan.mcpServers;
    },
    async revokeSession(id) {
      await call("DELETE", `/v1/sandbox-sessions/${encodeURIComponent(id)}`);
    },
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
