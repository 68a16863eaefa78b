import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  boolean,
  customType,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from "drizzle-orm/pg-core";

/**
 * Keyway's tables (SPEC §6.4). Conventions:
 * - ids are prefixed, time-sortable strings (`conn_01J…`, see ids.ts);
 * - every org-scoped row carries `organization_id`, and every query of org data filters on it;
 * - secrets live only in `*_ciphertext` columns, encrypted with associated data
 *   `table:column:id` (packages/crypto), so a value copied to another row does not decrypt;
 * - timestamps are `timestamptz`.
 */

const bytea = customType<{ data: Buffer; driverData: Buffer }>({
  dataType: () => "bytea",
});

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });
const createdAt = () => ts("created_at").notNull().defaultNow();

export const organizations = pgTable("organizations", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  createdAt: createdAt(),
});

export const apiTokens = pgTable(
  "api_tokens",
  {
    id: text("id").primaryKey(),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    role: text("role", { enum: ["admin", "member", "viewer"] }).notNull(),
    tokenHash: text("token_hash").notNull(),
    createdBy: text("created_by").notNull(),
    createdAt: createdAt(),
    lastUsedAt: ts("last_used_at"),
    revokedAt: ts("revoked_at"),
  },
  (t) => [
    uniqueIndex("api_tokens_token_hash_key").on(t.tokenHash),
    index("api_tokens_org_idx").on(t.organizationId),
  ],
);

export const integrationTargets = pgTable(
  "integration_targets",
  {
    id: text("id").primaryKey(),
    targetKey: text("target_key").notNull(),
    familyId: text("family_id").notNull(),
    variantId: text("variant_id").notNull(),
    kind: text("kind", { enum: ["agent", "git", "connector"] }).notNull(),
    enabled: boolean("enabled").notNull().default(false),
    config: jsonb("config").$type<Record<string, unknown>>().notNull().default({}),
    /** Encrypted JSON object of the target's secrets; null when none were written. */
    secretsCiphertext: text("secrets_ciphertext"),
    displayName: text("display_name"),
    description: text("description"),
    /** Where the row came from: `registry` (default target), `config` (keyway.toml) or `api`. */
    source: text("source", { enum: ["registry", "config", "api"] }).notNull(),
    health: jsonb("health").$type<Record<string, unknown>>(),
    createdAt: createdAt(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [uniqueIndex("integration_targets_target_key_key").on(t.targetKey)],
);

export const integrationConnections = pgTable(
  "integration_connections",
  {
    id: text("id").primaryKey(),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    targetId: text("target_id")
      .notNull()
      .references(() => integrationTargets.id),
    methodId: text("method_id").notNull(),
    methodKind: text("method_kind", {
      enum: [
        "api-key",
        "oauth2-authorization-code",
        "oauth2-client-credentials",
        "github-app-installation",
      ],
    }).notNull(),
    displayName: text("display_name").notNull(),
    status: text("status", { enum: ["active", "error", "revoked"] }).notNull(),
    config: jsonb("config").$type<Record<string, unknown>>().notNull().default({}),
    /** Provider-side subject (GitHub installation id, Slack team id, Linear organization id). */
    externalSubjectId: text("external_subject_id"),
    /** Current credential version (connection_credentials.version); 0 when none yet. */
    credentialVersion: integer("credential_version").notNull().default(0),
    lastError: text("last_error"),
    createdBy: text("created_by").notNull(),
    createdAt: createdAt(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [
    index("integration_connections_org_idx").on(t.organizationId),
    index("integration_connections_subject_idx").on(t.targetId, t.externalSubjectId),
  ],
);

/** Versioned credentials of a connection: API key fields, OAuth2 token sets. */
export const connectionCredentials = pgTable(
  "connection_credentials",
  {
    id: text("id").primaryKey(),
    connectionId: text("connection_id")
      .notNull()
      .references(() => integrationConnections.id, { onDelete: "cascade" }),
    organizationId: text("organization_id").notNull(),
    version: integer("version").notNull(),
    kind: text("kind", { enum: ["secret-fields", "oauth2-token-set"] }).notNull(),
    /** Encrypted JSON: `{ fields: {...} }` or `{ accessToken, refreshToken?, ... }`. */
    secretCiphertext: text("secret_ciphertext").notNull(),
    /** When the access value stops working (OAuth2); null for non-expiring secrets. */
    expiresAt: ts("expires_at"),
    createdAt: createdAt(),
    supersededAt: ts("superseded_at"),
  },
  (t) => [uniqueIndex("connection_credentials_version_key").on(t.connectionId, t.version)],
);

/**
 * Credentials minted by definition resolvers (GitHub App installation tokens), shared until
 * shortly before they expire: one row per connection and cache scope (a digest of what the value
 * depends on, e.g. the installation and the binding's repositories and permissions), so every
 * session, gateway and control-plane replica reuses one token instead of minting its own.
 */
export const cachedCredentials = pgTable(
  "cached_credentials",
  {
    id: text("id").primaryKey(),
    connectionId: text("connection_id")
      .notNull()
      .references(() => integrationConnections.id, { onDelete: "cascade" }),
    organizationId: text("organization_id").notNull(),
    /** The resolver that minted it (`github_app_installation_token`, `connection`). */
    resolver: text("resolver").notNull(),
    /** SHA-256 of the canonical JSON of the resolver name and its cache scope. */
    scopeDigest: text("scope_digest").notNull(),
    valueCiphertext: text("value_ciphertext").notNull(),
    expiresAt: ts("expires_at").notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("cached_credentials_scope_key").on(t.connectionId, t.scopeDigest)],
);

export const oauthSessions = pgTable(
  "oauth_sessions",
  {
    id: text("id").primaryKey(),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    /** The principal that started the flow; only it may complete the flow. */
    principal: text("principal").notNull(),
    targetId: text("target_id")
      .notNull()
      .references(() => integrationTargets.id),
    flow: text("flow", { enum: ["oauth2", "github-app-installation"] }).notNull(),
    methodId: text("method_id").notNull(),
    stateHash: text("state_hash").notNull(),
    pkceVerifierCiphertext: text("pkce_verifier_ciphertext"),
    redirectUri: text("redirect_uri").notNull(),
    /** Set when the flow re-authorises an existing connection. */
    connectionId: text("connection_id"),
    displayName: text("display_name"),
    /** Scopes the flow asked for; null = the target's defaults. */
    scopes: jsonb("scopes").$type<string[]>(),
    /** Where the browser goes once the flow ends (checked against the allowed origins at start). */
    redirectAfter: text("redirect_after"),
    expiresAt: ts("expires_at").notNull(),
    usedAt: ts("used_at"),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("oauth_sessions_state_hash_key").on(t.stateHash)],
);

export const sandboxProfiles = pgTable(
  "sandbox_profiles",
  {
    id: text("id").primaryKey(),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    description: text("description"),
    latestVersion: integer("latest_version").notNull().default(0),
    createdBy: text("created_by").notNull(),
    createdAt: createdAt(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [uniqueIndex("sandbox_profiles_org_name_key").on(t.organizationId, t.name)],
);

/** Immutable once written: no code path updates a row except to record its compiled digest. */
export const profileVersions = pgTable(
  "profile_versions",
  {
    id: text("id").primaryKey(),
    profileId: text("profile_id")
      .notNull()
      .references(() => sandboxProfiles.id, { onDelete: "cascade" }),
    organizationId: text("organization_id").notNull(),
    version: integer("version").notNull(),
    egressPolicy: jsonb("egress_policy").$type<{
      default: "allow" | "deny";
      allowHosts: string[];
    }>(),
    /** Digest of the last successful compile of this version (compiled_plans.digest). */
    planDigest: text("plan_digest"),
    createdBy: text("created_by").notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("profile_versions_profile_version_key").on(t.profileId, t.version)],
);

export const profileBindings = pgTable(
  "profile_bindings",
  {
    id: text("id").primaryKey(),
    profileVersionId: text("profile_version_id")
      .notNull()
      .references(() => profileVersions.id, { onDelete: "cascade" }),
    organizationId: text("organization_id").notNull(),
    connectionId: text("connection_id")
      .notNull()
      .references(() => integrationConnections.id),
    kind: text("kind", { enum: ["agent", "git", "connector"] }).notNull(),
    config: jsonb("config").$type<Record<string, unknown>>().notNull().default({}),
    createdAt: createdAt(),
  },
  (t) => [index("profile_bindings_version_idx").on(t.profileVersionId)],
);

/** Content-addressed, immutable plans. Never holds a secret. */
export const compiledPlans = pgTable("compiled_plans", {
  digest: text("digest").primaryKey(),
  plan: jsonb("plan").$type<Record<string, unknown>>().notNull(),
  createdAt: createdAt(),
});

export const sandboxSessions = pgTable(
  "sandbox_sessions",
  {
    id: text("id").primaryKey(),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    profileId: text("profile_id").notNull(),
    profileVersionId: text("profile_version_id")
      .notNull()
      .references(() => profileVersions.id),
    planDigest: text("plan_digest")
      .notNull()
      .references(() => compiledPlans.digest),
    /** Latest token expiry; refresh moves it, never past `expires_at`. */
    tokenExpiresAt: ts("token_expires_at").notNull(),
    /** Hard end of the session, whatever refreshes happen. */
    expiresAt: ts("expires_at").notNull(),
    revokedAt: ts("revoked_at"),
    createdBy: text("created_by").notNull(),
    createdAt: createdAt(),
  },
  (t) => [index("sandbox_sessions_org_idx").on(t.organizationId)],
);

/**
 * Gateway client assertions the control plane has accepted (SPEC §6.3, §6.8), shared by every API
 * replica so an assertion is accepted once in the whole fleet: one row per `jti`, claimed with
 * `INSERT … ON CONFLICT DO NOTHING` (no row inserted: a replay). A row is needed only until its
 * assertion can no longer verify (`forget_after` = its `exp` plus the accepted clock skew); the
 * API deletes rows past that, so the table holds about (assertions per second × their lifetime).
 */
export const spentGatewayAssertions = pgTable(
  "spent_gateway_assertions",
  {
    gatewayId: text("gateway_id").notNull(),
    jti: text("jti").notNull(),
    forgetAfter: ts("forget_after").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.gatewayId, t.jti] }),
    index("spent_gateway_assertions_forget_after_idx").on(t.forgetAfter),
  ],
);

/**
 * Webhook events as received at `/p/integration/webhooks/:targetKey` (SPEC §8). The row is the
 * receipt and the dedupe key (unique per target and provider delivery id): it outlives its raw
 * body, which the retention job removes first. `unassigned`: no connection could be resolved (no
 * organization sees it; operators do), never guessed.
 */
export const webhookEvents = pgTable(
  "webhook_events",
  {
    id: text("id").primaryKey(),
    targetId: text("target_id")
      .notNull()
      .references(() => integrationTargets.id),
    organizationId: text("organization_id"),
    connectionId: text("connection_id"),
    externalDeliveryId: text("external_delivery_id").notNull(),
    eventType: text("event_type").notNull(),
    /** The provider subject (installation, team, workspace) the event named, when it named one. */
    externalSubjectId: text("external_subject_id"),
    /** An allow-list of the request's headers (never authorization or cookies). */
    headers: jsonb("headers").$type<Record<string, string>>().notNull(),
    /** Raw body as received; removed by the retention job (dedupe keys stay). */
    rawBody: bytea("raw_body"),
    /**
     * The normalized event's payload, when it is not the raw body itself (`payloadInBody`). Read
     * it through `webhookEventPayload`, which covers both.
     */
    payload: jsonb("payload"),
    /**
     * The payload is exactly the raw body's JSON (a compact JSON body, as GitHub sends): it is
     * stored once, as the raw body, and `payload` is null. Building and compressing a second,
     * `jsonb` copy of every body was about 40 % of the events insert's cost in PostgreSQL
     * (docs/benchmarks.md, "Each body stored once"). The retention job writes `payload` before it removes the body.
     */
    payloadInBody: boolean("payload_in_body").notNull().default(false),
    status: text("status", {
      enum: ["received", "processed", "ignored", "failed", "unassigned"],
    }).notNull(),
    attempts: integer("attempts").notNull().default(0),
    lastError: text("last_error"),
    /** Provider retry number when the provider marks retries (Slack's X-Slack-Retry-Num). */
    providerRetry: integer("provider_retry"),
    receivedAt: ts("received_at").notNull().defaultNow(),
    processedAt: ts("processed_at"),
  },
  (t) => [
    uniqueIndex("webhook_events_delivery_key").on(t.targetId, t.externalDeliveryId),
    index("webhook_events_org_idx").on(t.organizationId, t.receivedAt),
    index("webhook_events_status_idx").on(t.status, t.receivedAt),
    index("webhook_events_received_idx").on(t.receivedAt),
    // Retention finds the bodies still to remove without walking the events that lost theirs.
    index("webhook_events_raw_body_idx").on(t.receivedAt).where(sql`${t.rawBody} is not null`),
  ],
);

/**
 * A webhook event's payload whichever way it is stored: parsed from the raw body when it is the
 * body (`payloadInBody`), else the `payload` column. Decoded like the column (JSON).
 */
export const webhookEventPayload = sql<unknown>`(case when ${webhookEvents.payloadInBody}
  then convert_from(${webhookEvents.rawBody}, 'UTF8')::jsonb else ${webhookEvents.payload} end)`.mapWith(
  webhookEvents.payload,
);

/**
 * Where an organization wants events delivered (Standard Webhooks signatures). During a secret
 * rotation the previous secret keeps signing (a second signature) until
 * `previous_secret_expires_at`. `disabled_reason` says why deliveries stopped (`gone`: the
 * endpoint answered 410).
 */
export const webhookSubscriptions = pgTable(
  "webhook_subscriptions",
  {
    id: text("id").primaryKey(),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    url: text("url").notNull(),
    description: text("description"),
    /** Event type filters: exact (`github.push`) or wildcard (`github.pull_request.*`, `*`). */
    eventTypes: text("event_types").array().notNull(),
    secretCiphertext: text("secret_ciphertext").notNull(),
    previousSecretCiphertext: text("previous_secret_ciphertext"),
    previousSecretExpiresAt: ts("previous_secret_expires_at"),
    enabled: boolean("enabled").notNull().default(true),
    disabledReason: text("disabled_reason"),
    createdBy: text("created_by").notNull(),
    createdAt: createdAt(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [index("webhook_subscriptions_org_idx").on(t.organizationId)],
);

/**
 * One event for one subscription. `pending` until delivered; `dead` after the last attempt of the
 * schedule failed; `failed` when it stopped early (the subscription was disabled or deleted).
 */
export const webhookDeliveries = pgTable(
  "webhook_deliveries",
  {
    id: text("id").primaryKey(),
    subscriptionId: text("subscription_id")
      .notNull()
      .references(() => webhookSubscriptions.id, { onDelete: "cascade" }),
    eventId: text("event_id")
      .notNull()
      .references(() => webhookEvents.id, { onDelete: "cascade" }),
    organizationId: text("organization_id").notNull(),
    status: text("status", { enum: ["pending", "delivered", "failed", "dead"] }).notNull(),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: ts("next_attempt_at"),
    lastError: text("last_error"),
    responseStatus: integer("response_status"),
    createdAt: createdAt(),
    deliveredAt: ts("delivered_at"),
  },
  (t) => [
    uniqueIndex("webhook_deliveries_event_subscription_key").on(t.eventId, t.subscriptionId),
    index("webhook_deliveries_org_idx").on(t.organizationId, t.createdAt),
  ],
);

/** Each attempt of a delivery: what the subscriber answered (first 1 KiB) and how fast. */
export const webhookDeliveryAttempts = pgTable(
  "webhook_delivery_attempts",
  {
    id: text("id").primaryKey(),
    deliveryId: text("delivery_id")
      .notNull()
      .references(() => webhookDeliveries.id, { onDelete: "cascade" }),
    organizationId: text("organization_id").notNull(),
    attempt: integer("attempt").notNull(),
    startedAt: ts("started_at").notNull(),
    durationMs: integer("duration_ms").notNull(),
    responseStatus: integer("response_status"),
    /** Up to 1 KiB of the response body, as text. */
    responseBody: text("response_body"),
    error: text("error"),
  },
  (t) => [
    uniqueIndex("webhook_delivery_attempts_key").on(t.deliveryId, t.attempt),
    index("webhook_delivery_attempts_started_idx").on(t.startedAt),
  ],
);

/**
 * GitHub App deliveries Keyway asked GitHub to redeliver (it never stored them): one request per
 * delivery, so the reconciliation job is idempotent across runs and replicas.
 */
export const webhookRedeliveries = pgTable(
  "webhook_redeliveries",
  {
    targetId: text("target_id")
      .notNull()
      .references(() => integrationTargets.id, { onDelete: "cascade" }),
    externalDeliveryId: text("external_delivery_id").notNull(),
    /** GitHub's numeric id of the delivery (what the redelivery endpoint takes). */
    providerDeliveryId: text("provider_delivery_id").notNull(),
    requestedAt: ts("requested_at").notNull(),
    /** The status GitHub answered the redelivery request with, or null when it failed to answer. */
    responseStatus: integer("response_status"),
  },
  (t) => [uniqueIndex("webhook_redeliveries_key").on(t.targetId, t.externalDeliveryId)],
);

/**
 * Append-only, hash-chained (SPEC §6.6). Entries are inserted by whoever audits, in their own
 * transaction, without any chain position: appends never wait for each other. The sealer
 * (apps/control-plane-api/src/audit/sealer.ts) later links committed entries into one hash chain
 * per organization (and `deployment` for entries without one) by inserting their links into
 * `audit_seals`: an entry is never updated, so sealing leaves no dead row versions and no index
 * churn in this table. `seq` is the insertion order, the stable order of listings.
 */
export const auditLog = pgTable(
  "audit_log",
  {
    seq: bigserial("seq", { mode: "number" }).primaryKey(),
    id: text("id").notNull(),
    organizationId: text("organization_id"),
    actor: text("actor").notNull(),
    action: text("action").notNull(),
    subjectType: text("subject_type").notNull(),
    subjectId: text("subject_id").notNull(),
    traceId: text("trace_id"),
    details: jsonb("details").$type<Record<string, unknown>>().notNull().default({}),
    createdAt: ts("created_at").notNull(),
  },
  (t) => [
    uniqueIndex("audit_log_id_key").on(t.id),
    index("audit_log_org_idx").on(t.organizationId, t.seq),
  ],
);

/**
 * An audit entry's place in its chain (SPEC §6.6), written once by the sealer: the entry (`seq`),
 * its `chain`, its position `chain_seq`, the hash of the entry before it and its own hash (which
 * covers the entry's content and these links). Insert-only, like `audit_log`.
 */
export const auditSeals = pgTable(
  "audit_seals",
  {
    seq: bigint("seq", { mode: "number" }).primaryKey(),
    chain: text("chain").notNull(),
    chainSeq: bigint("chain_seq", { mode: "number" }).notNull(),
    prevHash: text("prev_hash").notNull(),
    hash: text("hash").notNull(),
  },
  (t) => [uniqueIndex("audit_seals_chain_key").on(t.chain, t.chainSeq)],
);

/**
 * Where the sealer stands (one row, `id` 1): every entry with `seq <= top_seq` is sealed, or is
 * one of `gaps` (ranges of seq values it has not seen committed yet: an open transaction's
 * entries, or a rolled-back one's), or was a gap dropped once every transaction that could still
 * commit into it had ended. So a pass reads only new entries and the gaps, never sealed ones.
 */
export const auditSealProgress = pgTable("audit_seal_progress", {
  id: integer("id").primaryKey(),
  topSeq: bigint("top_seq", { mode: "number" }).notNull(),
  gaps: jsonb("gaps").$type<AuditSealGap[]>().notNull().default([]),
});

/**
 * A range of seq values not seen committed, `[from, to, seenAtMs, xmax]`: when the sealer first
 * saw it (the database's clock), and, from a pass at least a second later, that pass's snapshot
 * xmax (`pg_snapshot_xmax`, as text): once every transaction below it has ended, nothing can still
 * commit into the range.
 */
export type AuditSealGap = [from: number, to: number, seenAtMs: number, xmax: string | null];

/**
 * Signed statements of a chain's head (SPEC §6.6), written by the sealer: an HMAC over
 * (chain, chain_seq, hash, created_at) with a key derived from the master key ring, so removing
 * the newest entries of a chain (which leaves a shorter chain that still links) is detected.
 */
export const auditCheckpoints = pgTable(
  "audit_checkpoints",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    chain: text("chain").notNull(),
    chainSeq: bigint("chain_seq", { mode: "number" }).notNull(),
    hash: text("hash").notNull(),
    createdAt: ts("created_at").notNull(),
    keyVersion: integer("key_version").notNull(),
    signature: text("signature").notNull(),
  },
  (t) => [index("audit_checkpoints_chain_idx").on(t.chain, t.id)],
);
