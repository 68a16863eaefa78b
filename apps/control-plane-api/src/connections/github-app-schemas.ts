import { z } from "@hono/zod-openapi";
import { nameSchema, referenceSchema } from "../text-fields";
import { connectionSchema } from "./schemas";

/** Request and response shapes of the GitHub App installation flow (`github-app-flow.ts`). */

export const githubAppStartBody = z
  .strictObject({
    targetKey: referenceSchema,
    /** The target's installation method; default: its first `github-app-installation` method. */
    methodId: referenceSchema.optional(),
    /** The new connection's name; default `GitHub App installation <id>`. */
    displayName: nameSchema.optional(),
    /**
     * Where the browser goes once the installation is connected (`?connectionId=…` is added):
     * an absolute URL on the API's origin or one of `api.allowed_redirect_origins`. Without it
     * the callback answers with a small result page.
     */
    redirectAfter: z.string().min(1).max(2000).optional(),
  })
  .openapi("GitHubAppInstallStart");

export type GitHubAppStartInput = z.infer<typeof githubAppStartBody>;

export const githubAppStartedSchema = z
  .object({
    installUrl: z.string().describe("send the user here: the app's install page, with the state"),
    callbackUrl: z
      .string()
      .describe(
        "where GitHub sends the user back: the app's User authorization callback URL must be this",
      ),
    expiresAt: z.string().describe("the state is single use and expires at this instant"),
  })
  .openapi("GitHubAppInstallStarted");

const redirectParameter = (max: number) => z.string().max(max).optional();

/** The redirect's query, as GitHub sends it after an install; the flow checks every part. */
export const githubAppCallbackQuery = z.object({
  installation_id: redirectParameter(40).openapi({
    param: { name: "installation_id", in: "query" },
  }),
  setup_action: redirectParameter(40).openapi({ param: { name: "setup_action", in: "query" } }),
  state: redirectParameter(200).openapi({ param: { name: "state", in: "query" } }),
  code: redirectParameter(200).openapi({ param: { name: "code", in: "query" } }),
});

export const githubAppCallbackParams = z.object({
  targetKey: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "targetKey", in: "path" } }),
});

/** A console that receives GitHub's redirect itself forwards its query with the user's token. */
export const githubAppCompleteBody = z
  .strictObject({
    targetKey: referenceSchema,
    state: z.string().min(1).max(200),
    installationId: z.string().min(1).max(40).optional(),
    setupAction: z.string().min(1).max(40).optional(),
    code: z.string().min(1).max(200).optional(),
  })
  .openapi("GitHubAppInstallComplete");

export const githubAppCompletedSchema = z
  .object({
    connection: connectionSchema,
    outcome: z
      .enum(["created", "reconnected", "existing"])
      .describe("`reconnected`: the connection was in error; `existing`: already connected"),
  })
  .openapi("GitHubAppInstallCompleted");
