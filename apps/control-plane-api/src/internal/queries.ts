import { type DatabaseHandle, integrationConnections } from "@keyway/db";

/**
 * The internal API's own reads, as postgres.js prepared statements. Resolution runs on every
 * gateway cache miss, so it is one statement (`selectResolutionFacts`): `pnpm bench:resolve
 * --concurrency` showed the earlier four drizzle queries (session, plan, route connection,
 * credential) costing most of a cold resolution's CPU, each of them unprepared and so two round
 * trips (describe, then execute) and a parse and plan in PostgreSQL.
 */

/**
 * Stored plans' JSON text by digest; a prepared statement with the digests as one JSON parameter
 * (gateways load each new session's plan once, a sandbox storm's hundreds at a time).
 */
export function selectPlanTexts(
  sql: DatabaseHandle["sql"],
  digests: readonly string[],
): Promise<{ digest: string; plan: string }[]> {
  return sql<{ digest: string; plan: string }[]>`
    select digest, plan::text as plan from compiled_plans
    where digest in (select jsonb_array_elements_text(${JSON.stringify(digests)}::jsonb))`;
}

/**
 * What one resolution needs, in one round trip: the session, the route (taken from the session's
 * own plan, as stored JSON), the connection that route names with its target, the route's binding
 * (joined on the session's profile version as well, so a plan only ever reaches its own bindings'
 * config) and the connection's current credential version (still encrypted). Each part is null
 * when absent, so the caller can refuse with the right reason. Instants are epoch milliseconds:
 * the drizzle client leaves timestamps as text.
 */
export interface ResolutionFacts {
  sessionId: string;
  organizationId: string;
  profileVersionId: string;
  planDigest: string;
  planFound: boolean;
  expiresAtMs: number;
  revokedAtMs: number | null;
  /** The plan's route with the requested id, unvalidated JSON; null when the plan has none. */
  route: unknown;
  connection: {
    id: string;
    organizationId: string;
    methodId: string;
    methodKind: ConnectionRow["methodKind"];
    status: ConnectionRow["status"];
    config: unknown;
    externalSubjectId: string | null;
    credentialVersion: number;
  } | null;
  target: {
    id: string;
    targetKey: string;
    variantId: string;
    enabled: boolean;
    config: unknown;
    secretsCiphertext: string | null;
  } | null;
  bindingConfig: unknown;
  credential: {
    id: string;
    version: number;
    secretCiphertext: string;
    expiresAtMs: number | null;
  } | null;
}

type ConnectionRow = typeof integrationConnections.$inferSelect;

function isMethodKind(value: string): value is ConnectionRow["methodKind"] {
  return (integrationConnections.methodKind.enumValues as readonly string[]).includes(value);
}

function isStatus(value: string): value is ConnectionRow["status"] {
  return (integrationConnections.status.enumValues as readonly string[]).includes(value);
}

interface FactsRow {
  session_id: string;
  organization_id: string;
  profile_version_id: string;
  plan_digest: string;
  plan_found: boolean;
  expires_at_ms: number;
  revoked_at_ms: number | null;
  route: unknown;
  connection_id: string | null;
  connection_organization_id: string;
  method_id: string;
  method_kind: string;
  status: string;
  connection_config: unknown;
  external_subject_id: string | null;
  connection_credential_version: number;
  target_id: string | null;
  target_key: string;
  variant_id: string;
  enabled: boolean;
  target_config: unknown;
  secrets_ciphertext: string | null;
  binding_config: unknown;
  credential_id: string | null;
  credential_version: number;
  secret_ciphertext: string;
  credential_expires_at_ms: number | null;
}

/** One resolution's keys: the session asking and the route of its plan it wants. */
export interface ResolutionKey {
  sessionId: string;
  routeId: string;
}

/**
 * The facts of each key, in order (undefined where the session does not exist), in one round
 * trip however many keys: the keys travel as one JSON parameter, so a gateway's batch of cold
 * resolutions (`POST /internal/v1/credentials/resolve-batch`) costs one statement, not one each.
 */
export async function selectResolutionFacts(
  sql: DatabaseHandle["sql"],
  keys: readonly ResolutionKey[],
): Promise<(ResolutionFacts | undefined)[]> {
  const parameter = JSON.stringify(keys.map((key, i) => ({ i, s: key.sessionId, r: key.routeId })));
  // A postgres.js tagged template: a named prepared statement per connection, one round trip.
  const rows = await sql<(FactsRow & { i: number })[]>`
    select k.i, s.id as session_id, s.organization_id, s.profile_version_id, s.plan_digest,
      p.digest is not null as plan_found,
      floor(extract(epoch from s.expires_at) * 1000)::float8 as expires_at_ms,
      floor(extract(epoch from s.revoked_at) * 1000)::float8 as revoked_at_ms,
      r.route,
      c.id as connection_id, c.organization_id as connection_organization_id, c.method_id,
      c.method_kind, c.status, c.config as connection_config, c.external_subject_id,
      c.credential_version as connection_credential_version,
      t.id as target_id, t.target_key, t.variant_id, t.enabled, t.config as target_config,
      t.secrets_ciphertext,
      b.config as binding_config,
      cc.id as credential_id, cc.version as credential_version, cc.secret_ciphertext,
      floor(extract(epoch from cc.expires_at) * 1000)::float8 as credential_expires_at_ms
    from jsonb_to_recordset(${parameter}::jsonb) as k(i int, s text, r text)
    join sandbox_sessions s on s.id = k.s
    left join compiled_plans p on p.digest = s.plan_digest
    left join lateral (
      select e.route from jsonb_array_elements(p.plan -> 'routes') as e(route)
      where e.route ->> 'id' = k.r limit 1
    ) r on true
    left join integration_connections c on c.id = r.route -> 'credential' ->> 'connectionId'
    left join integration_targets t on t.id = c.target_id
    left join profile_bindings b
      on b.id = r.route ->> 'bindingId' and b.profile_version_id = s.profile_version_id
    left join lateral (
      select id, version, secret_ciphertext, expires_at from connection_credentials
      where connection_id = c.id and superseded_at is null limit 1
    ) cc on true`;
  const facts: (ResolutionFacts | undefined)[] = keys.map(() => undefined);
  for (const row of rows) facts[row.i] = factsOf(row);
  return facts;
}

function factsOf(row: FactsRow): ResolutionFacts {
  const { method_kind: methodKind, status } = row;
  if (row.connection_id !== null && !(isMethodKind(methodKind) && isStatus(status))) {
    throw new Error(`connection ${row.connection_id} has an unknown method kind or status`);
  }
  return {
    sessionId: row.session_id,
    organizationId: row.organization_id,
    profileVersionId: row.profile_version_id,
    planDigest: row.plan_digest,
    planFound: row.plan_found,
    expiresAtMs: row.expires_at_ms,
    revokedAtMs: row.revoked_at_ms,
    route: row.route,
    connection:
      row.connection_id === null
        ? null
        : {
            id: row.connection_id,
            organizationId: row.connection_organization_id,
            methodId: row.method_id,
            methodKind: methodKind as ConnectionRow["methodKind"],
            status: status as ConnectionRow["status"],
            config: row.connection_config,
            externalSubjectId: row.external_subject_id,
            credentialVersion: row.connection_credential_version,
          },
    target:
      row.target_id === null
        ? null
        : {
            id: row.target_id,
            targetKey: row.target_key,
            variantId: row.variant_id,
            enabled: row.enabled,
            config: row.target_config,
            secretsCiphertext: row.secrets_ciphertext,
          },
    bindingConfig: row.binding_config,
    credential:
      row.credential_id === null
        ? null
        : {
            id: row.credential_id,
            version: row.credential_version,
            secretCiphertext: row.secret_ciphertext,
            expiresAtMs: row.credential_expires_at_ms,
          },
  };
}
