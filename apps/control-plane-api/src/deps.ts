import type { KeywayConfig } from "@keyway/config";
import type { GatewayAssertionVerifier, KeyRing, SessionTokenSigner } from "@keyway/crypto";
import type { DatabaseHandle } from "@keyway/db";
import type { Clock, FetchLike, IntegrationRegistry } from "@keyway/integrations-core";
import type { JobQueue } from "@keyway/jobs";
import type { Tracer } from "@keyway/observability";
import type { AuditSealer } from "./audit/sealer";
import type { ConsoleOidcClient, OidcVerifier } from "./auth/oidc";
import type { InvalidationFeed } from "./events/invalidations";
import type { Logger } from "./logger";
import type { ApiMetrics } from "./metrics";

/**
 * Everything the API needs, passed in explicitly (no module singletons, no process.env):
 * tests build these from real components; `server.ts` builds them from the config file.
 */
export interface AppDeps {
  database: DatabaseHandle;
  registry: IntegrationRegistry;
  keyRing: KeyRing;
  sessionSigner: SessionTokenSigner;
  gatewayVerifier: GatewayAssertionVerifier;
  invalidations: InvalidationFeed;
  /** The job queue (producer side): jobs are enqueued inside the caller's transaction. */
  jobs: JobQueue;
  /** Links recorded audit entries into their chains; `sealNow` before verifying. */
  auditSealer: AuditSealer;
  oidc?: OidcVerifier;
  /** The console's OIDC sign-in (authorization code + PKCE), when `oidc.console_client_id` is set. */
  consoleOidc?: ConsoleOidcClient;
  clock: Clock;
  logger: Logger;
  /** The Prometheus metrics of this app (`GET /metrics`). */
  metrics: ApiMetrics;
  /** Spans of requests and credential resolutions; absent when traces are off (`[telemetry]`). */
  tracer?: Tracer;
  /** Outbound HTTP to providers (credential tests, OAuth, resolvers). */
  fetch: FetchLike;
  settings: AppSettings;
}

/** The slice of configuration the API reads at request time. */
export interface AppSettings {
  operatorTokenHashes: readonly string[];
  publicUrl: string;
  /** Proxy URL handed to sandboxes, without credentials, e.g. `http://127.0.0.1:8081`. */
  gatewayProxyUrl: string;
  /** PEM of the gateway CA sandboxes must trust. */
  gatewayCaPem: string;
  /** Lifetime of refreshed tokens; the token a session starts with lives as long as the session. */
  sessionTokenTtlSeconds: number;
  /** Hard upper bound on a session's life, whatever refreshes happen. */
  sessionMaxLifetimeSeconds: number;
  /** Default egress policy for profiles that set none. */
  defaultEgressPolicy: "allow" | "deny";
  maxJsonBodyBytes: number;
  /** Every request is answered within this (`api.request_timeout_ms`, `request-deadline.ts`). */
  requestTimeoutMs: number;
  /** `webhooks.body_limit_bytes`: larger webhook bodies get 413. */
  webhookBodyLimitBytes: number;
  /** `webhooks.secret_rotation_overlap_hours`: how long a rotated-out signing secret still signs. */
  webhookSecretRotationOverlapHours: number;
  /** `webhooks.allow_private_subscribers`: subscriber URLs may resolve to private addresses. */
  allowPrivateWebhookSubscribers: boolean;
  /** `api.allowed_redirect_origins`: where OAuth2 flows may send the browser, besides `publicUrl`. */
  allowedRedirectOrigins: readonly string[];
  /** `oauth2.token_request_timeout_ms`: the longest wait for a provider's token endpoint. */
  tokenRequestTimeoutMs: number;
}

export function appSettingsFromConfig(config: KeywayConfig, gatewayCaPem: string): AppSettings {
  return {
    operatorTokenHashes: config.operator.token_hashes,
    publicUrl: config.api.public_url,
    gatewayProxyUrl: config.gateway.public_proxy_url,
    gatewayCaPem,
    sessionTokenTtlSeconds: config.sessions.token_ttl_seconds,
    sessionMaxLifetimeSeconds: config.sessions.max_lifetime_seconds,
    defaultEgressPolicy: config.gateway.egress.default_policy,
    maxJsonBodyBytes: 1024 * 1024,
    requestTimeoutMs: config.api.request_timeout_ms,
    webhookBodyLimitBytes: config.webhooks.body_limit_bytes,
    webhookSecretRotationOverlapHours: config.webhooks.secret_rotation_overlap_hours,
    allowPrivateWebhookSubscribers: config.webhooks.allow_private_subscribers,
    allowedRedirectOrigins: config.api.allowed_redirect_origins,
    tokenRequestTimeoutMs: config.oauth2.token_request_timeout_ms,
  };
}
