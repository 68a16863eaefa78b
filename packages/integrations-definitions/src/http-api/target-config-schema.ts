import {
  credentialSecretSchema,
  decodeStandardWebhookSecret,
  httpBaseUrlSchema,
  httpMethodSchema,
  httpUrlSettingSchema,
  normalizePathPrefix,
  pathHasPrefix,
  pathPrefixSchema,
  routeHostSchema,
  STANDARD_WEBHOOK_SECRET_PREFIX,
  singleLineTextSchema,
  splitBaseUrl,
} from "@keyway/integrations-core";
import { z } from "zod";

/**
 * Target config of the generic `http-api` connector: everything an operator says about one REST
 * API so that users can connect to it without anyone writing code. Operators create one target
 * per API (several targets of this definition, each with its own `targetKey`).
 */

// Headers the gateway itself owns (framing, hop-by-hop, proxy auth, routing): injecting a
// credential into one of them would break or smuggle the request rather than authenticate it.
const RESERVED_HEADER_NAMES = new Set([
  "connection",
  "content-length",
  "content-type",
  "cookie",
  "host",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** RFC 9110 §5.6.2 token, the syntax of an auth scheme such as `Bearer` or `Token`. */
const authSchemeSchema = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "scheme must be an HTTP token such as Bearer or Token");

export const httpApiAuthSchema = z.discriminatedUnion("type", [
  /** `Authorization: Bearer <secret>`. */
  z.strictObject({ type: z.literal("bearer") }),
  /** `<name>: [<scheme> ]<secret>`, e.g. `X-API-Key: <secret>` or `Authorization: Token <secret>`. */
  z.strictObject({
    type: z.literal("header"),
    name: z
      .string()
      // The plan keeps header names as lower-case tokens of letters, digits and dashes.
      .regex(/^[A-Za-z0-9-]+$/, "header name holds letters, digits and dashes only")
      .refine(
        (name) => !RESERVED_HEADER_NAMES.has(name.toLowerCase()),
        "this header is managed by the gateway and cannot carry a credential",
      ),
    scheme: authSchemeSchema.optional(),
  }),
  /** `?<name>=<secret>` appended to the request's query. */
  z.strictObject({
    type: z.literal("query"),
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.~-]+$/, "query parameter name holds A-Z a-z 0-9 _ . ~ - only"),
  }),
  /** `Authorization: Basic base64(<username>:<secret>)`. */
  z.strictObject({
    type: z.literal("basic"),
    // RFC 7617 §2: the user-id cannot contain a colon, and control characters never belong in it.
    username: z
      .string()
      .min(1)
      .regex(/^[^:\p{Cc}]+$/u, "username must not contain ':' or control characters"),
  }),
]);

export type HttpApiAuth = z.infer<typeof httpApiAuthSchema>;

export const httpApiOAuth2Schema = z.strictObject({
  /**
   * Token endpoint (RFC 6749 §3.2): the client credentials grant, and the code exchange and
   * refresh of the authorization-code method. A query is allowed.
   */
  tokenUrl: httpUrlSettingSchema({ query: true }),
  /** Authorization endpoint (RFC 6749 §3.1); required by the authorization-code method. */
  authorizationUrl: httpUrlSettingSchema({ query: true }).optional(),
  /**
   * The operator's client at the authorization server, used by the authorization-code method
   * (its secret is the target secret `clientSecret`; absent = a public client using PKCE only).
   */
  clientId: singleLineTextSchema.min(1).max(512).optional(),
  scopes: z
    .array(
      z
        .string()
        .regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, "a scope is a non-empty token without spaces"),
    )
    .optional(),
  /** Sent as `audience` (Auth0, Okta and others name the API the token is for this way). */
  audience: singleLineTextSchema.min(1).optional(),
  /** How the client authenticates at the token endpoint (RFC 6749 §2.3.1): HTTP Basic or form body. */
  clientAuth: z.enum(["basic", "body"]).default("basic"),
});

export type HttpApiOAuth2Config = z.infer<typeof httpApiOAuth2Schema>;

export const httpApiMcpServerNameSchema = z
  .string()
  .regex(/^[a-z0-9_-]{1,64}$/, "MCP server name holds 1-64 of a-z 0-9 _ -");

export const httpApiTargetConfigSchema = z
  .strictObject({
    /** e.g. `https://api.example.com/v2`; its host is the API route's host, its path the default prefix. */
    baseUrl: httpBaseUrlSchema,
    /** Upper-case HTTP methods the API may be called with; absent = any method. */
    allowedMethods: z.array(httpMethodSchema).min(1).optional(),
    /** Paths reachable on the API host, each under the base URL path; absent = the base URL path. */
    pathPrefixes: z.array(pathPrefixSchema).min(1).optional(),
    /** How the credential is injected into API requests. */
    auth: httpApiAuthSchema.default({ type: "bearer" }),
    /** Token endpoint settings; required by the client-credentials connection method. */
    oauth2: httpApiOAuth2Schema.optional(),
    /** An MCP server of this API, reached through its own route with `Authorization: Bearer`. */
    mcpServerUrl: httpBaseUrlSchema.optional(),
    /** Name of that MCP server in agent configs; default: the target key reduced to [a-z0-9_-]. */
    mcpServerName: httpApiMcpServerNameSchema.optional(),
    /** Inbound webhooks signed by the Standard Webhooks scheme, verified with `webhookSecret`. */
    webhook: z.strictObject({ scheme: z.literal("standard-webhooks") }).optional(),
  })
  // zod still runs this refinement when a field failed a format check, so every value is
  // re-checked before it is used and fields that already carry an issue are skipped.
  .superRefine((config, ctx) => {
    const base = checkRouteUrl(config.baseUrl, ["baseUrl"], ctx);
    if (base !== undefined) {
      for (const [i, prefix] of (config.pathPrefixes ?? []).entries()) {
        if (!pathPrefixSchema.safeParse(prefix).success) continue;
        const normalized = normalizePathPrefix(prefix);
        if (normalized === null) {
          ctx.addIssue({
            code: "custom",
            path: ["pathPrefixes", i],
            message: "path prefix holds an encoded slash, backslash or NUL",
          });
        } else if (!pathHasPrefix(normalized, base.pathPrefix)) {
          ctx.addIssue({
            code: "custom",
            path: ["pathPrefixes", i],
            message: `path prefix must lie under the base URL path ${base.pathPrefix}`,
          });
        }
      }
    }
    if (config.mcpServerUrl !== undefined) {
      checkRouteUrl(config.mcpServerUrl, ["mcpServerUrl"], ctx);
    } else if (config.mcpServerName !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["mcpServerName"],
        message: "mcpServerName needs mcpServerUrl",
      });
    }
  });

export type HttpApiTargetConfig = z.infer<typeof httpApiTargetConfigSchema>;

export const httpApiTargetSecretSchema = z.strictObject({
  /** Secret of the operator's OAuth2 client (`oauth2.clientId`), for the authorization-code method. */
  clientSecret: credentialSecretSchema.optional(),
  /** `whsec_<base64>` shared with the sender of Standard Webhooks. */
  webhookSecret: credentialSecretSchema
    .refine(
      (secret) => decodeStandardWebhookSecret(secret) !== undefined,
      `webhook secret must be ${STANDARD_WEBHOOK_SECRET_PREFIX} followed by base64 of at least 24 bytes`,
    )
    .optional(),
});

export type HttpApiTargetSecrets = z.infer<typeof httpApiTargetSecretSchema>;

/**
 * The route pieces of a URL, or undefined after reporting why a route cannot be built from it
 * (a host the plan cannot name, such as an IPv6 literal, or a path no request could match).
 */
function checkRouteUrl(
  url: string,
  path: (string | number)[],
  ctx: z.RefinementCtx,
): { host: string; pathPrefix: string } | undefined {
  if (!httpBaseUrlSchema.safeParse(url).success) return undefined;
  const parts = splitBaseUrl(url);
  if (!routeHostSchema.safeParse(parts.host).success) {
    ctx.addIssue({ code: "custom", path, message: "host must be a DNS name or IPv4 address" });
    return undefined;
  }
  const pathPrefix = normalizePathPrefix(parts.pathPrefix);
  if (pathPrefix === null) {
    ctx.addIssue({
      code: "custom",
      path,
      message: "URL path holds an encoded slash, backslash or NUL",
    });
    return undefined;
  }
  return { host: parts.host, pathPrefix };
}
