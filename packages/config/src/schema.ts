import {
  ed25519PublicJwkSchema,
  isEd25519PrivateKeyText,
  masterKeyRingSchema,
} from "@keyway/crypto";
import { z } from "zod";

/**
 * The configuration file's schema: the single source of its types. Keys are snake_case, as in
 * `keyway.toml`; every table is strict, so a misspelt key is an error naming it. Tables that only
 * some processes need (`keys.master` for the API and worker, `gateway.identity` for gateways, …)
 * are optional here and demanded by the process that uses them (see `requireSetting`), so a gateway
 * never has to hold the master keys.
 */

const port = z.number().int().min(0).max(65535);
const nonEmpty = z.string().min(1);
const positiveInt = z.number().int().min(1);
const httpUrl = z.url({ protocol: /^https?$/, error: "expected an http:// or https:// URL" });
/** A base URL others are joined to: trailing slashes are dropped. */
const baseUrl = httpUrl.transform((url) => url.replace(/\/+$/, ""));
/** Same pattern as definition ids: target keys appear in URLs (`/p/integration/webhooks/:targetKey`). */
const targetKey = z
  .string()
  .regex(
    /^[a-z][a-z0-9-]{0,62}$/,
    "expected lower-case letters, digits and '-', starting with a letter",
  );
const gatewayId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, "expected letters, digits, '.', '_' and '-'");
const privateKeyText = z.string().refine(isEd25519PrivateKeyText, {
  message: "expected an Ed25519 private key as PKCS#8 PEM or JWK JSON",
});
/** `example.com` (that host only) or `*.example.com` (any subdomain, not the apex). */
const hostPattern = z
  .string()
  .regex(
    /^(\*\.)?([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?$/,
    "expected a lower-case host name, optionally starting with '*.'",
  );

/** The http:// URL a client dials for a bind address (a wildcard address is not dialable). */
export function dialableUrl(host: string, port: number): string {
  const dialHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  return `http://${dialHost.includes(":") ? `[${dialHost}]` : dialHost}:${port}`;
}

/** `scheme://host[:port]`, nothing after it: the origin a browser may be redirected to. */
const redirectOrigin = httpUrl
  .refine(
    (value) => {
      try {
        const url = new URL(value);
        return url.href.replace(/\/$/, "") === url.origin;
      } catch {
        return false;
      }
    },
    { error: "expected an origin (scheme, host and port only)" },
  )
  .transform((value) => new URL(value).origin);

export const apiSchema = z
  .strictObject({
    host: nonEmpty.default("127.0.0.1"),
    port: port.default(8080),
    /** Base URL the outside world uses (OAuth callbacks, webhook URLs); default from host/port. */
    public_url: baseUrl.optional(),
    /**
     * Every request is answered within this: past it, 503 `service_unavailable`, and a
     * transaction the request began never commits afterwards.
     */
    request_timeout_ms: z.number().int().min(100).max(600_000).default(10_000),
    /**
     * Origins (`https://console.example.com`) besides `public_url`'s own that an OAuth2 flow may
     * send the browser back to (`redirectAfter`); anything else is refused as an open redirect.
     */
    allowed_redirect_origins: z.array(redirectOrigin).default([]),
  })
  .transform((api) => ({ ...api, public_url: api.public_url ?? dialableUrl(api.host, api.port) }));

/** A PostgreSQL timeout setting in milliseconds; 0 = none. At most a day. */
const serverTimeoutMs = z.number().int().min(0).max(86_400_000);

export const databaseSchema = z.strictObject({
  /** `postgres://…`; absent → the embedded PostgreSQL below is started. */
  url: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "expected a postgres:// or postgresql:// URL")
    .optional(),
  pool_size: positiveInt.max(1000).default(10),
  /** Reaching the server and logging in; a frozen server accepts connections but never answers. */
  connect_timeout_ms: positiveInt.max(600_000).default(5_000),
  /** Server-side bounds on each connection (PostgreSQL settings); 0 turns one off. */
  statement_timeout_ms: serverTimeoutMs.default(10_000),
  lock_timeout_ms: serverTimeoutMs.default(5_000),
  idle_in_transaction_timeout_ms: serverTimeoutMs.default(15_000),
  embedded: z
    .strictObject({
      data_dir: nonEmpty.default(".keyway/postgres"),
      port: port.default(54329),
    })
    .prefault({}),
});

export const sessionSigningSchema = z
  .strictObject({
    current_kid: nonEmpty,
    keys: z
      .array(z.strictObject({ kid: nonEmpty, private_key: privateKeyText }))
      .min(1, "expected at least one key"),
  })
  .superRefine((signing, ctx) => {
    const kids = new Set<string>();
    signing.keys.forEach((key, index) => {
      if (kids.has(key.kid)) {
        ctx.addIssue({
          code: "custom",
          path: ["keys", index, "kid"],
          message: `duplicate kid ${key.kid}`,
        });
      }
      kids.add(key.kid);
    });
    if (!kids.has(signing.current_kid)) {
      ctx.addIssue({
        code: "custom",
        path: ["current_kid"],
        message: `no key with kid ${signing.current_kid} in keys`,
      });
    }
  });

export const keysSchema = z.strictObject({
  /** The master key ring for secrets at rest: `current` and `[[keys.master.keys]] version, key`. */
  master: masterKeyRingSchema.optional(),
  /** Ed25519 keys for sandbox session tokens (control plane only). */
  session_signing: sessionSigningSchema.optional(),
});

export const sessionsSchema = z.strictObject({
  /** `iss` / `aud` of session tokens: the control plane signs and gateways verify with these. */
  issuer: nonEmpty.default("keyway"),
  audience: nonEmpty.default("keyway-gateway"),
  /**
   * Lifetime of the tokens `POST /v1/sandbox-sessions/{id}/refresh` returns, for API clients that
   * want short tokens. The proxy credential a sandbox receives at start lives as long as its
   * session (running agents cannot reload their environment); revocation cuts both.
   */
  token_ttl_seconds: z.number().int().min(1).max(86_400).default(900),
  /** A session's hard end: no token outlives it. */
  max_lifetime_seconds: z
    .number()
    .int()
    .min(60)
    .max(30 * 86_400)
    .default(86_400),
});

export const operatorSchema = z.strictObject({
  /** SHA-256 hex of each operator bearer token (`hashToken` from @keyway/crypto). */
  token_hashes: z
    .array(
      z
        .string()
        .regex(/^[0-9a-f]{64}$/, "expected a SHA-256 hex digest (64 lower-case hex digits)"),
    )
    .default([]),
});

export const organizationRoleSchema = z.enum(["admin", "member", "viewer"]);

export const oidcSchema = z.strictObject({
  /** Compared with the `iss` claim exactly as written (a trailing slash matters). */
  issuer: httpUrl,
  audience: z.union([nonEmpty, z.array(nonEmpty).min(1)], {
    error: "expected a string or an array of strings",
  }),
  /** Absent → `jwks_uri` from the issuer's `/.well-known/openid-configuration`. */
  jwks_url: httpUrl.optional(),
  org_claim: nonEmpty.default("org_id"),
  role_claim: nonEmpty.default("role"),
  /** Claim value → Keyway role; a value that is already a role name maps to itself. */
  role_map: z.record(nonEmpty, organizationRoleSchema).default({}),
  /**
   * The web console's OAuth client at the issuer (public client, authorization code + PKCE; its
   * redirect URI is `<api.public_url>/console/sign-in/oidc/callback`). Absent → console sign-in
   * with API tokens only.
   */
  console_client_id: nonEmpty.optional(),
  /**
   * Scopes the console asks for (absent → `openid`); the access token must carry `audience` and
   * the org/role claims.
   */
  console_scopes: nonEmpty.optional(),
});

export const gatewaySchema = z
  .strictObject({
    host: nonEmpty.default("127.0.0.1"),
    port: port.default(8081),
    admin_host: nonEmpty.default("127.0.0.1"),
    admin_port: port.default(8082),
    /** Proxy URL handed to sandboxes (without credentials); default from host/port. */
    public_proxy_url: baseUrl.optional(),
    /** Where the gateway reaches the control plane; default `api.public_url`. */
    control_plane_url: baseUrl.optional(),
    ca_cert_path: nonEmpty.default(".keyway/gateway-ca.pem"),
    ca_key_path: nonEmpty.default(".keyway/gateway-ca-key.pem"),
    /**
     * PEM bundle of CA certificates trusted for HTTPS/WSS upstreams on top of the system roots
     * (private GHES, internal APIs).
     */
    upstream_ca_path: nonEmpty.optional(),
    egress: z
      .strictObject({
        /** For hosts that no route of the session's plan names. */
        default_policy: z.enum(["allow", "deny"]).default("deny"),
        allow_hosts: z.array(hostPattern).default([]),
        allow_private_networks: z.boolean().default(false),
      })
      .prefault({}),
    /** Towards upstreams: connect, time to response headers, longest silence in a body. */
    timeouts: z
      .strictObject({
        connect_ms: positiveInt.default(10_000),
        headers_ms: positiveInt.default(300_000),
        body_idle_ms: positiveInt.default(300_000),
      })
      .prefault({}),
    /** Token bucket per route (plan digest + route id); `requests_per_second = 0` turns it off. */
    rate_limit: z
      .strictObject({
        requests_per_second: z.number().min(0).default(100),
        burst: positiveInt.default(200),
      })
      .prefault({}),
    /** Per upstream origin; `failure_threshold = 0` turns it off. */
    circuit_breaker: z
      .strictObject({
        failure_threshold: z.number().int().min(0).default(5),
        window_ms: positiveInt.default(30_000),
        cool_down_ms: positiveInt.default(30_000),
      })
      .prefault({}),
    /**
     * How the gateway keeps revocations (SPEC §7 "Session"): every session in use is re-confirmed
     * live with the control plane every `recheck_seconds`, whatever the event feed delivered; when
     * the control plane cannot be reached, sessions confirmed before keep working for
     * `outage_grace_seconds` after their last confirmation, and sessions never confirmed are
     * refused (fail closed).
     */
    liveness: z
      .strictObject({
        recheck_seconds: z.number().min(0.1).max(3600).default(10),
        outage_grace_seconds: z.number().min(0).max(86_400).default(300),
      })
      .prefault({}),
    /**
     * Memory for what the request path keeps, in MiB of approximate heap: the plans of the
     * sessions served (least recently used dropped, fetched again when needed) and verified
     * session tokens. Sized by memory, not by count, so many sandboxes on many profile versions
     * do not make the gateway fetch plans per request.
     */
    caches: z
      .strictObject({
        plans_mb: z.number().min(1).max(16_384).default(64),
        sessions_mb: z.number().min(1).max(16_384).default(16),
      })
      .prefault({}),
    /** Re-sends of idempotent requests without a body after a connection error. */
    retries: z
      .strictObject({ max_retries: z.number().int().min(0).max(5).default(1) })
      .prefault({}),
    /**
     * Which client carries route requests without a body to `http:` upstreams: `keyway` (the
     * gateway's lean keep-alive HTTP/1.1 client, `pipeline/plain-upstream.ts`; ≈ 15–20 % less CPU
     * per request) or `undici` (the route's undici pool, which carries every other request).
     */
    plain_http_client: z.enum(["keyway", "undici"]).default("keyway"),
    /** This gateway's identity towards the control plane (gateways only). */
    identity: z
      .strictObject({
        gateway_id: gatewayId,
        private_key: privateKeyText.optional(),
        private_key_path: nonEmpty.optional(),
      })
      .superRefine((identity, ctx) => {
        if ((identity.private_key === undefined) === (identity.private_key_path === undefined)) {
          ctx.addIssue({
            code: "custom",
            path: ["private_key"],
            message: "set exactly one of private_key and private_key_path",
          });
        }
      })
      .optional(),
  })
  .transform((gateway) => ({
    ...gateway,
    public_proxy_url: gateway.public_proxy_url ?? dialableUrl(gateway.host, gateway.port),
  }));

export const internalSchema = z
  .strictObject({
    /** `aud` of gateway client assertions; control plane and gateways must agree. */
    audience: nonEmpty.default("keyway-internal"),
    gateways: z
      .array(z.strictObject({ id: gatewayId, public_jwk: ed25519PublicJwkSchema }))
      .default([]),
  })
  .superRefine((internal, ctx) => {
    const ids = new Set<string>();
    internal.gateways.forEach((gateway, index) => {
      if (ids.has(gateway.id)) {
        ctx.addIssue({
          code: "custom",
          path: ["gateways", index, "id"],
          message: `duplicate gateway id ${gateway.id}`,
        });
      }
      ids.add(gateway.id);
    });
  });

export const webhooksSchema = z
  .strictObject({
    body_limit_bytes: positiveInt.max(64 * 1024 * 1024).default(1024 * 1024),
    raw_body_retention_days: positiveInt.default(7),
    dedupe_retention_hours: z
      .number()
      .int()
      .min(72, "must be at least 72 (delivery ids are deduplicated for at least 72 hours)")
      .default(72),
    /** Events (the dedupe keys) with their deliveries and attempts are deleted after this. */
    event_retention_days: positiveInt.max(3650).default(30),
    /** Delivery attempt records (subscriber answers) are deleted after this. */
    attempt_retention_days: positiveInt.max(3650).default(14),
    /** Rows one retention statement touches: each batch is its own short transaction. */
    retention_batch_size: positiveInt.max(100_000).default(1000),
    /**
     * How far back the GitHub reconciliation looks for deliveries Keyway never stored. GitHub
     * redelivers only deliveries of the past 3 days, and the window must stay inside the dedupe
     * retention (a delivery whose event was deleted would look missing).
     */
    github_redelivery_lookback_hours: positiveInt.max(72).default(24),
    /** Listing pages (100 deliveries each) read per GitHub App per run. */
    github_redelivery_max_pages: positiveInt.max(100).default(10),
    /** Redeliveries asked for per GitHub App per run; the rest wait for the next run. */
    github_redelivery_max_per_run: positiveInt.max(1000).default(50),
    /**
     * After a subscription's secret is rotated, the previous secret keeps signing deliveries (a
     * second `v1,` signature) this long, so subscribers can switch without losing a message.
     */
    secret_rotation_overlap_hours: z.number().int().min(0).max(720).default(24),
    /**
     * Subscriber URLs may resolve to loopback, link-local and private addresses (on-premises
     * subscribers). Off: such URLs are refused when written and again at every send.
     */
    allow_private_subscribers: z.boolean().default(false),
    /** Towards subscribers, per attempt: TCP (and TLS) connect, then the response. */
    delivery: z
      .strictObject({
        connect_timeout_ms: positiveInt.max(120_000).default(10_000),
        response_timeout_ms: positiveInt.max(600_000).default(30_000),
      })
      .prefault({}),
  })
  .superRefine((webhooks, ctx) => {
    if (webhooks.event_retention_days * 24 < webhooks.dedupe_retention_hours) {
      ctx.addIssue({
        code: "custom",
        path: ["event_retention_days"],
        message: `must keep events at least as long as webhooks.dedupe_retention_hours (${webhooks.dedupe_retention_hours} hours), got ${webhooks.event_retention_days} days`,
      });
    }
  });

export const workerSchema = z.strictObject({
  /** Jobs of each queue one worker process runs at once. */
  concurrency: positiveInt.max(1024).default(4),
  /** How often an idle worker looks for new jobs (seconds). */
  polling_interval_seconds: z.number().min(0.5).max(60).default(0.5),
  /** How often jobs whose worker died (expired) are found and handed out again (seconds). */
  maintenance_interval_seconds: positiveInt.max(3600).default(30),
  /** Running jobs given this long to finish when the worker stops; then they are released. */
  shutdown_timeout_ms: positiveInt.max(600_000).default(30_000),
  /** Longest wait for one answer of the target health probe (every 5 minutes). */
  target_health_timeout_ms: positiveInt.max(60_000).default(5_000),
  /** Where the worker serves `GET /metrics` and `GET /healthz` (it has no other HTTP port). */
  metrics_host: nonEmpty.default("127.0.0.1"),
  metrics_port: port.default(8083),
});

/** OAuth2 tokens of connections (`[oauth2]`): refresh ahead of expiry, token endpoint bounds. */
export const oauth2Schema = z.strictObject({
  /**
   * The worker (every minute) refreshes access tokens that expire within this (seconds), so a
   * sandbox's request never waits on a token endpoint. Resolution refreshes on its own within
   * the last 60 s.
   */
  proactive_refresh_window_seconds: z.number().int().min(120).max(86_400).default(600),
  /** Longest wait for a provider's token endpoint (code exchange, refresh, client credentials). */
  token_request_timeout_ms: positiveInt.max(120_000).default(10_000),
});

export const targetSchema = z.strictObject({
  /** Definition variant id, e.g. `github-cloud`. */
  variant: targetKey,
  enabled: z.boolean().default(true),
  display_name: nonEmpty.optional(),
  /** Parsed by the definition's target config schema when targets are synced. */
  config: z.record(z.string(), z.unknown()).default({}),
  /** Target secrets (encrypted when synced into the database). */
  secrets: z.record(z.string(), nonEmpty).default({}),
});

/** Trace export (OpenTelemetry). Trace ids travel and reach the audit log whether or not. */
export const telemetrySchema = z.strictObject({
  /** `off` (default): no spans are made; `otlp`: spans are exported over OTLP/HTTP. */
  traces: z.enum(["off", "otlp"]).default("off"),
  /** The collector's OTLP/HTTP traces endpoint. */
  otlp_endpoint: httpUrl.default("http://127.0.0.1:4318/v1/traces"),
});

export const logSchema = z.strictObject({
  level: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
});

export const keywayConfigSchema = z
  .strictObject({
    api: apiSchema.prefault({}),
    database: databaseSchema.prefault({}),
    keys: keysSchema.prefault({}),
    sessions: sessionsSchema.prefault({}),
    operator: operatorSchema.prefault({}),
    oidc: oidcSchema.optional(),
    gateway: gatewaySchema.prefault({}),
    internal: internalSchema.prefault({}),
    webhooks: webhooksSchema.prefault({}),
    worker: workerSchema.prefault({}),
    oauth2: oauth2Schema.prefault({}),
    /** Operator-provisioned targets by target key. */
    targets: z.record(targetKey, targetSchema).default({}),
    log: logSchema.prefault({}),
    telemetry: telemetrySchema.prefault({}),
  })
  .transform((config) => ({
    ...config,
    gateway: {
      ...config.gateway,
      control_plane_url: config.gateway.control_plane_url ?? config.api.public_url,
    },
  }));

/** A loaded configuration: every default applied, relative paths resolved. */
export type KeywayConfig = z.infer<typeof keywayConfigSchema>;
/** What may be written in `keyway.toml` (before defaults). */
export type KeywayConfigInput = z.input<typeof keywayConfigSchema>;
export type TargetConfig = z.infer<typeof targetSchema>;
export type OrganizationRole = z.infer<typeof organizationRoleSchema>;
