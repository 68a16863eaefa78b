import {
  type Database,
  type DatabaseHandle,
  DeadlineExceededError,
  type Executor,
  executePrepared,
  integrationConnections,
  newId,
  webhookEvents,
} from "@keyway/db";
import type {
  AnyIntegrationDefinition,
  Clock,
  JsonValue,
  NormalizedHeaders,
  WebhookConnectionCandidate,
  WebhookEvent,
} from "@keyway/integrations-core";
import { pickHeaders } from "@keyway/integrations-core";
import { type JobQueue, webhookProcessQueue } from "@keyway/jobs";
import { and, eq, inArray, ne, or, sql } from "drizzle-orm";
import { type AuditEntryInput, appendAuditEntries } from "../audit/service";
import { createStatementBatcher } from "../statement-batcher";

/**
 * Writes verified webhook events (SPEC §8): each event with its dedupe key, its processing job
 * and its `webhook.received` audit entry in ONE transaction, and answers each request only once
 * that transaction committed.
 *
 * Group commit: requests arriving while a write is in flight wait and go together in the next
 * transaction, as multi-row inserts (events, jobs, audit entries), with one lookup of their
 * connections. A lone request is written at once, so batching adds no latency at low rates; under
 * load a transaction's fixed costs (BEGIN, COMMIT and its fsync, the deadline's round trip, the
 * statements' parse and round trips) are paid once per batch instead of once per event.
 * `pnpm bench:webhooks` (docs/benchmarks.md): the per-event path cost ≈ 3.9 ms of API CPU and
 * 3.4 ms of PostgreSQL CPU per event, mostly per-statement; batching is what brings it down.
 *
 * Round trips: a batch is first written as if every delivery id were new, its events, jobs and
 * audit entries sent together, and its statements prepared (`executePrepared`); a batch that
 * meets a stored delivery id rolls back and is written again the careful way below.
 *
 * What stays per request: a delivery id already stored (by an earlier batch or a concurrent
 * one) answers `duplicate: true` with the first event's id, and is queued again only while it
 * was never processed; copies of one delivery id inside a batch become one event. A batch whose
 * transaction fails (one event's fault, a lost connection) is written again one event at a time,
 * so one request's failure is never its neighbours'. Every request keeps its deadline: a batch
 * commits only before the earliest deadline among its requests (its transaction runs on
 * `database.bound(earliest)`), and a request
 * whose deadline passed while it waited is not written.
 */

/** A usable target for ingest: definition, parsed config and secrets. */
export interface IngestTarget {
  id: string;
  targetKey: string;
  definition: AnyIntegrationDefinition;
  config: unknown;
  secrets: unknown;
}

export interface VerifiedEvent {
  target: IngestTarget;
  headers: NormalizedHeaders;
  rawBody: Uint8Array;
  event: WebhookEvent;
}

export interface StoredEvent {
  id: string;
  duplicate: boolean;
}

export interface EventWriter {
  /**
   * Resolves once the event (or the decision that it is a duplicate) is committed, which happens
   * only before `deadline` (the request's, on the `performance.now()` clock).
   */
  write(event: VerifiedEvent, deadline: number): Promise<StoredEvent>;
}

export interface EventWriterDeps {
  database: Pick<DatabaseHandle, "db" | "bound">;
  clock: Clock;
  jobs: JobQueue;
}

/** Headers kept with an event: what identifies and describes the delivery, never credentials. */
export const STORED_WEBHOOK_HEADERS = [
  "content-type",
  "user-agent",
  "x-github-event",
  "x-github-delivery",
  "x-github-hook-id",
  "x-github-hook-installation-target-id",
  "x-github-hook-installation-target-type",
  "x-slack-request-timestamp",
  "x-slack-retry-num",
  "x-slack-retry-reason",
  "linear-delivery",
  "linear-event",
  "webhook-id",
  "webhook-timestamp",
] as const;

/** Events per transaction at most (bounds a statement's parameters and a batch's latency). */
const MAX_BATCH = 128;
/**
 * Transactions in flight at once (`createStatementBatcher` does the queueing). One: everything
 * that arrives while it commits goes into the next. With two, the second slot took each request
 * as it arrived (measured: batches of 30 and of 1 alternating), paying a transaction per event
 * again; holding the second slot until 8 events wait cost ≈ 20 % more CPU per event in the API
 * and PostgreSQL for no gain in throughput (docs/benchmarks.md, "## Webhooks").
 */
const MAX_IN_FLIGHT = 1;

/**
 * A verified event as it waits for its batch and its transaction: what its row needs and no more.
 * Kept from the request's arrival to its answer — across a group commit's round trips, long enough
 * for the API's young-generation collections to copy it and then promote it — so it holds neither
 * the request's full header set nor, when the body is its payload's JSON (`payloadInBody`), the
 * parsed payload: its `payload` is read again from the body in the rare case something asks
 * (a definition's `resolveConnection` that looks into it, as Slack's does).
 */
interface QueuedEvent {
  target: IngestTarget;
  /** `STORED_WEBHOOK_HEADERS` only. */
  headers: NormalizedHeaders;
  body: Buffer;
  payloadInBody: boolean;
  /** The event; without its payload when `payloadInBody` (see `withPayload`). */
  event: WebhookEventFacts;
}

type WebhookEventFacts = Omit<WebhookEvent, "payload"> & { payload?: JsonValue };

function queuedEvent(verified: VerifiedEvent): QueuedEvent {
  const { rawBody, event } = verified;
  const body = Buffer.from(rawBody.buffer, rawBody.byteOffset, rawBody.byteLength);
  const payloadInBody = isBodyJson(event.payload, body);
  let facts: WebhookEventFacts = event;
  if (payloadInBody) {
    const { payload: _parsed, ...rest } = event;
    facts = rest;
  }
  return {
    target: verified.target,
    headers: pickHeaders(verified.headers, STORED_WEBHOOK_HEADERS),
    body,
    payloadInBody,
    event: facts,
  };
}

/** The whole event, for its definition: a payload kept in the body is parsed again when read. */
function withPayload(item: QueuedEvent): WebhookEvent {
  const { event, body } = item;
  if (!item.payloadInBody) return event as WebhookEvent;
  return {
    ...event,
    get payload(): JsonValue {
      return JSON.parse(body.toString("utf8")) as JsonValue;
    },
  };
}

/** A request waiting to be written, with the deadline of the request that submitted it. */
interface Pending {
  event: QueuedEvent;
  deadline: number | undefined;
}

/** A request's outcome inside a batch: its own failure is its own, never its neighbours'. */
type Outcome = { stored: StoredEvent } | { error: unknown };

export function createEventWriter(deps: EventWriterDeps): EventWriter {
  /** Writes `pending` in one transaction, or each alone if that fails; never rejects. */
  async function writeBatch(pending: readonly Pending[]): Promise<Outcome[]> {
    const now = performance.now();
    const outcomes: Outcome[] = new Array(pending.length);
    const live: number[] = [];
    pending.forEach(({ deadline }, index) => {
      if (deadline !== undefined && deadline <= now) {
        outcomes[index] = { error: new DeadlineExceededError() };
      } else {
        live.push(index);
      }
    });
    if (live.length === 0) return outcomes;
    let earliest: number | undefined;
    for (const index of live) {
      const deadline = pending[index]?.deadline;
      if (deadline !== undefined && (earliest === undefined || deadline < earliest)) {
        earliest = deadline;
      }
    }
    try {
      const stored = await writeEvents(
        deps,
        deps.database.bound(earliest),
        live.map((index) => (pending[index] as Pending).event),
      );
      live.forEach((index, position) => {
        const result = stored[position];
        outcomes[index] =
          result === undefined
            ? { error: new Error("webhook event not written") }
            : { stored: result };
      });
    } catch (error) {
      if (live.length === 1) {
        outcomes[live[0] as number] = { error };
        return outcomes;
      }
      // One event's fault must not fail its neighbours: each again alone, under its own deadline.
      await Promise.all(
        live.map(async (index) => {
          [outcomes[index]] = (await writeBatch([pending[index] as Pending])) as [Outcome];
        }),
      );
    }
    return outcomes;
  }

  const batcher = createStatementBatcher<Pending, Outcome>({
    run: writeBatch,
    maxBatch: MAX_BATCH,
    maxInFlight: MAX_IN_FLIGHT,
  });

  return {
    async write(event, deadline) {
      const outcome = await batcher.submit({ event: queuedEvent(event), deadline });
      if ("error" in outcome) throw outcome.error;
      return outcome.stored;
    },
  };
}

/** Writes a batch in one transaction; the results in the order of `items`. */
async function writeEvents(
  deps: EventWriterDeps,
  db: Database,
  items: readonly QueuedEvent[],
): Promise<StoredEvent[]> {
  const connections = await resolveConnections(db, items);
  const receivedAt = deps.clock.now();

  // Copies of one delivery id in this batch: the first is written, the others follow its fate.
  const firstOf = new Map<string, number>();
  const keyOf = (item: QueuedEvent) => `${item.target.id}\n${item.event.deliveryId}`;
  const rows: EventRecord[] = [];
  items.forEach((item, index) => {
    const key = keyOf(item);
    if (firstOf.has(key)) return;
    firstOf.set(key, index);
    const connection = connections[index];
    rows.push({
      position: 0,
      id: newId("webhookEvent", receivedAt),
      target_id: item.target.id,
      organization_id: connection?.organizationId ?? null,
      connection_id: connection?.id ?? null,
      external_delivery_id: item.event.deliveryId,
      event_type: item.event.eventType,
      external_subject_id: item.event.externalSubjectId ?? null,
      headers: item.headers,
      payload: item.payloadInBody ? null : (item.event.payload ?? null),
      payload_in_body: item.payloadInBody,
      status: connection !== undefined ? "received" : "unassigned",
      provider_retry: item.event.retryAttempt ?? null,
      [SOURCE]: item,
    });
  });

  // Concurrent batches insert in one order (the unique key's), so two batches holding copies of
  // the same delivery ids wait for each other at most one way: never a deadlock.
  rows.sort((a, b) =>
    a.target_id === b.target_id
      ? compare(a.external_delivery_id, b.external_delivery_id)
      : compare(a.target_id, b.target_id),
  );
  rows.forEach((row, position) => {
    row.position = position;
  });

  /** The jobs and `webhook.received` entries of the events inserted (by `keyOf`: their ids). */
  function receivedWork(insertedIds: ReadonlyMap<string, string>) {
    const jobs: { payload: { eventId: string }; options: { singletonKey: string } }[] = [];
    const audit: AuditEntryInput[] = [];
    for (const [key, index] of firstOf) {
      const id = insertedIds.get(key);
      const item = items[index];
      if (id === undefined || item === undefined) continue;
      const connection = connections[index];
      if (connection !== undefined) {
        jobs.push({ payload: { eventId: id }, options: { singletonKey: id } });
      }
      audit.push({
        organizationId: connection?.organizationId ?? null,
        actor: "provider",
        action: "webhook.received",
        subjectType: "webhook_event",
        subjectId: id,
        details: {
          targetKey: item.target.targetKey,
          eventType: item.event.eventType,
          deliveryId: item.event.deliveryId,
          ...(connection !== undefined ? { connectionId: connection.id } : { unassigned: true }),
        },
      });
    }
    return { jobs, audit };
  }

  function answers(
    insertedIds: ReadonlyMap<string, string>,
    earlier: ReadonlyMap<string, { id: string }>,
  ): StoredEvent[] {
    return items.map((item, index) => {
      const key = keyOf(item);
      const id = insertedIds.get(key);
      if (id !== undefined) return { id, duplicate: firstOf.get(key) !== index };
      const existing = earlier.get(key);
      // Deleted by retention between the insert and the select: nothing left to deduplicate.
      if (existing === undefined) throw new Error("webhook event vanished while deduplicating");
      return { id: existing.id, duplicate: true };
    });
  }

  // First as if every delivery id were new (the common case): the events, their jobs and audit
  // entries go out together, one round trip instead of two. If any was stored before (or by a
  // concurrent batch), that transaction rolls back and the batch is written the careful way.
  const allIds = new Map(
    rows.map((row) => [`${row.target_id}\n${row.external_delivery_id}`, row.id]),
  );
  const batch = eventsJson(rows);
  try {
    return await db.transaction(async (tx) => {
      const { jobs, audit } = receivedWork(allIds);
      jobs.sort((a, b) => compare(a.options.singletonKey, b.options.singletonKey));
      const [inserted] = await Promise.all([
        insertEvents(tx, batch, receivedAt),
        deps.jobs.enqueueMany(tx, webhookProcessQueue, jobs),
        appendAuditEntries(tx, deps.clock, audit),
      ]);
      if (inserted.length !== rows.length) throw new SeenBefore();
      return answers(allIds, new Map());
    });
  } catch (error) {
    if (!(error instanceof SeenBefore)) throw error;
  }

  return db.transaction(async (tx) => {
    const inserted = await insertEvents(tx, batch, receivedAt);
    const insertedIds = new Map(
      inserted.map((row) => [`${row.target_id}\n${row.external_delivery_id}`, row.id]),
    );
    const { jobs, audit } = receivedWork(insertedIds);

    // Delivery ids stored before this batch: answered as duplicates of the stored event.
    const earlier = await storedBefore(
      tx,
      [...firstOf.entries()]
        .filter(([key]) => !insertedIds.has(key))
        .map(([, index]) => items[index])
        .filter((item) => item !== undefined),
    );
    const failedIds: string[] = [];
    for (const existing of earlier.values()) {
      if (existing.status === "received" || existing.status === "failed") {
        // Never processed: queue it again (dropped by the queue when a job is already waiting).
        jobs.push({ payload: { eventId: existing.id }, options: { singletonKey: existing.id } });
      }
      if (existing.status === "failed") failedIds.push(existing.id);
    }
    if (failedIds.length > 0) {
      await tx
        .update(webhookEvents)
        .set({ status: "received", lastError: null })
        .where(inArray(webhookEvents.id, failedIds));
    }
    jobs.sort((a, b) => compare(a.options.singletonKey, b.options.singletonKey));
    // Independent inserts: sent together (pipelined on the transaction's connection).
    await Promise.all([
      deps.jobs.enqueueMany(tx, webhookProcessQueue, jobs),
      appendAuditEntries(tx, deps.clock, audit),
    ]);
    return answers(insertedIds, earlier);
  });
}

/** A batch's first attempt met a delivery id stored before: it is written again with care. */
class SeenBefore extends Error {
  override readonly name = "SeenBefore";
}

/** A `webhook_events` row as `insertEvents` sends it (columns by name; the body apart). */
interface EventRecord {
  /** Insert order within the batch (the unique key's order). */
  position: number;
  id: string;
  target_id: string;
  organization_id: string | null;
  connection_id: string | null;
  external_delivery_id: string;
  event_type: string;
  external_subject_id: string | null;
  headers: NormalizedHeaders;
  /** Null when `payload_in_body`: the stored body is the payload (`webhookEventPayload`). */
  payload: unknown;
  payload_in_body: boolean;
  status: "received" | "unassigned";
  provider_retry: number | null;
  /** Its body's source, written by `eventsJson` (a symbol: not a column, `JSON.stringify` skips it). */
  [SOURCE]: QueuedEvent;
}

const SOURCE = Symbol("source");
const OPEN = Buffer.from("[");
const COMMA = Buffer.from(",");
const BODY_JSON = Buffer.from(',"body_json":');
const CLOSE_ROW = Buffer.from("}");
const CLOSE = Buffer.from("]");

/**
 * A batch's rows as the JSON array `insertEvents` sends: each row's columns, then its body — when
 * the body is its payload's JSON (`payloadInBody`: valid UTF-8 and JSON, compact, no `\u0000` or
 * lone surrogate), the body itself as the JSON value `body_json`, byte for byte (PostgreSQL's
 * `json` keeps a value's text as it came, so `body_json::text` is the body); otherwise `raw_body`,
 * the body in base64. Put together as bytes and decoded once: no base64 copy of each body (a
 * third larger, encoded here and decoded by PostgreSQL), no string of each body, and the batch's
 * text built in one piece rather than by joining strings.
 */
function eventsJson(rows: readonly EventRecord[]): string {
  const chunks: Buffer[] = [OPEN];
  for (const row of rows) {
    if (chunks.length > 1) chunks.push(COMMA);
    const columns = Buffer.from(JSON.stringify(row));
    // Its closing brace (one byte) makes way for the body.
    chunks.push(columns.subarray(0, columns.length - 1));
    const item = row[SOURCE];
    if (item.payloadInBody) chunks.push(BODY_JSON, item.body, CLOSE_ROW);
    else chunks.push(Buffer.from(`,"raw_body":"${item.body.toString("base64")}"}`));
  }
  chunks.push(CLOSE);
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * Inserts a batch's events, skipping delivery ids already stored; answers the inserted ones.
 *
 * The rows travel as ONE JSON parameter (`jsonb_to_recordset`): one statement text, prepared
 * once per connection whatever the batch's size, with no per-value query building or binding.
 * Through drizzle's multi-row insert (13 bound values per event, a new statement text per batch
 * size, the body hex-encoded) building and binding the statement cost the API more CPU than
 * anything else in the batch (`pnpm bench:webhooks --profile`, docs/benchmarks.md).
 */
async function insertEvents(
  tx: Executor,
  batch: string,
  receivedAt: Date,
): Promise<{ id: string; target_id: string; external_delivery_id: string }[]> {
  const inserted = await executePrepared<{
    id: string;
    target_id: string;
    external_delivery_id: string;
  }>(
    tx,
    sql`
    insert into webhook_events (id, target_id, organization_id, connection_id,
      external_delivery_id, event_type, external_subject_id, headers, raw_body, payload,
      payload_in_body, status, provider_retry, received_at)
    select id, target_id, organization_id, connection_id, external_delivery_id, event_type,
      external_subject_id, headers,
      coalesce(convert_to(body_json::text, 'UTF8'), decode(raw_body, 'base64')), payload,
      payload_in_body, status, provider_retry, ${receivedAt.toISOString()}::timestamptz
    from json_to_recordset(${batch}::json) as event(position int, id text,
      target_id text, organization_id text, connection_id text, external_delivery_id text,
      event_type text, external_subject_id text, headers jsonb, raw_body text, body_json json,
      payload jsonb, payload_in_body boolean, status text, provider_retry int)
    order by position
    on conflict (target_id, external_delivery_id) do nothing
    returning id, target_id, external_delivery_id`,
  );
  return [...inserted];
}

/**
 * Whether an event's payload is exactly its raw body's JSON (byte for byte what
 * `JSON.stringify` writes, as GitHub's compact bodies are): then the payload is stored once, as
 * the raw body (`payload_in_body`), and read back through `webhookEventPayload`. Building a
 * second, `jsonb` copy of every body and compressing it was about 40 % of the events insert's
 * cost in PostgreSQL (docs/benchmarks.md, "Each body stored once"). Only objects and arrays: a body `null` would become a JSON
 * null where the column held SQL NULL. Byte equality also means the body is valid UTF-8 and
 * valid JSON, so reading it as `jsonb` cannot fail — except for what `jsonb` refuses and
 * `JSON.stringify` writes: `\u0000` and lone surrogates (`\udXXX`; paired ones it writes as
 * UTF-8). Bodies holding either keep their own `payload`, which fails as before.
 */
function isBodyJson(payload: unknown, body: Buffer): boolean {
  if (typeof payload !== "object" || payload === null) return false;
  const text = JSON.stringify(payload);
  // Cheap refusal first: a string's UTF-8 bytes number between 1 and 3 per UTF-16 unit.
  if (body.length < text.length || body.length > text.length * 3) return false;
  if (!body.equals(Buffer.from(text))) return false;
  return !body.includes("\\u0000") && !body.includes("\\ud");
}

/**
 * The stored events of delivery ids that were not inserted, locked, so concurrent copies decide
 * one after another. By `target\ndelivery id`.
 */
async function storedBefore(
  tx: Executor,
  items: readonly QueuedEvent[],
): Promise<Map<string, { id: string; status: string }>> {
  const found = new Map<string, { id: string; status: string }>();
  if (items.length === 0) return found;
  const rows = await tx
    .select({
      id: webhookEvents.id,
      status: webhookEvents.status,
      targetId: webhookEvents.targetId,
      deliveryId: webhookEvents.externalDeliveryId,
    })
    .from(webhookEvents)
    .where(
      or(
        ...items.map((item) =>
          and(
            eq(webhookEvents.targetId, item.target.id),
            eq(webhookEvents.externalDeliveryId, item.event.deliveryId),
          ),
        ),
      ),
    )
    .orderBy(webhookEvents.id)
    .for("update");
  for (const row of rows) found.set(`${row.targetId}\n${row.deliveryId}`, row);
  return found;
}

interface ResolvedConnection {
  id: string;
  organizationId: string;
}

/**
 * Each event's connection, as its definition resolves it among the candidates: the target's
 * connections naming the event's subject (or whose id the event names); otherwise the target's
 * first two, enough for "the only connection" rules. Revoked connections never receive events.
 * One query for the whole batch, plus one per target whose events name no known subject.
 */
async function resolveConnections(
  db: Executor,
  items: readonly QueuedEvent[],
): Promise<(ResolvedConnection | undefined)[]> {
  type Row = WebhookConnectionCandidate & { organizationId: string; targetId: string };
  const columns = {
    id: integrationConnections.id,
    targetId: integrationConnections.targetId,
    organizationId: integrationConnections.organizationId,
    externalSubjectId: integrationConnections.externalSubjectId,
    config: integrationConnections.config,
  };
  const candidate = (row: {
    id: string;
    targetId: string;
    organizationId: string;
    externalSubjectId: string | null;
    config: unknown;
  }): Row => ({
    id: row.id,
    targetId: row.targetId,
    organizationId: row.organizationId,
    ...(row.externalSubjectId !== null ? { externalSubjectId: row.externalSubjectId } : {}),
    config: row.config,
  });

  const targetIds = [...new Set(items.map((item) => item.target.id))];
  const subjects = [
    ...new Set(
      items.map((item) => item.event.externalSubjectId).filter((subject) => subject !== undefined),
    ),
  ];
  // Prepared (`executePrepared`), so one statement text whatever the batch holds: the ids travel
  // as JSON arrays, not as a list of bound values whose count would change the text.
  const named =
    subjects.length === 0
      ? []
      : (
          await executePrepared<{
            id: string;
            target_id: string;
            organization_id: string;
            external_subject_id: string | null;
            config: unknown;
          }>(
            db,
            sql`
          select id, target_id, organization_id, external_subject_id, config
          from integration_connections
          where status <> 'revoked'
            and target_id = any(array(select jsonb_array_elements_text(${JSON.stringify(targetIds)}::jsonb)))
            and (external_subject_id = any(array(select jsonb_array_elements_text(${JSON.stringify(subjects)}::jsonb)))
              or id = any(array(select jsonb_array_elements_text(${JSON.stringify(subjects)}::jsonb))))`,
          )
        ).map((row) =>
          candidate({
            id: row.id,
            targetId: row.target_id,
            organizationId: row.organization_id,
            externalSubjectId: row.external_subject_id,
            config: row.config,
          }),
        );

  const namedBy = (item: QueuedEvent) => {
    const subject = item.event.externalSubjectId;
    if (subject === undefined) return [];
    return named.filter(
      (row) =>
        row.targetId === item.target.id &&
        (row.externalSubjectId === subject || row.id === subject),
    );
  };
  const namedFor = items.map(namedBy);
  const fallbackTargets = new Set(
    items.filter((_, index) => namedFor[index]?.length === 0).map((item) => item.target.id),
  );
  const firstTwo = new Map<string, Row[]>();
  for (const targetId of fallbackTargets) {
    const rows = await db
      .select(columns)
      .from(integrationConnections)
      .where(
        and(
          eq(integrationConnections.targetId, targetId),
          ne(integrationConnections.status, "revoked"),
        ),
      )
      .limit(2);
    firstTwo.set(targetId, rows.map(candidate));
  }

  return items.map((item, index) => {
    const byName = namedFor[index] ?? [];
    const candidates = byName.length > 0 ? byName : (firstTwo.get(item.target.id) ?? []);
    const webhook = item.target.definition.webhook;
    const id = webhook?.resolveConnection(
      withPayload(item),
      candidates.map(({ id, externalSubjectId, config }) => ({
        id,
        ...(externalSubjectId !== undefined ? { externalSubjectId } : {}),
        config,
      })),
    );
    const chosen = candidates.find((row) => row.id === id);
    return chosen === undefined
      ? undefined
      : { id: chosen.id, organizationId: chosen.organizationId };
  });
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
