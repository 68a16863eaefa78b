import { generateKeyPairSync } from "node:crypto";
import { signStandardWebhook, textViolation } from "@keyway/integrations-core";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, type TestApp } from "./testing/test-app";

/**
 * SPEC §10: NUL, lone surrogates and control characters in API strings or path parameters, and
 * CR/LF in URL settings, get 400 naming the field, and nothing is written. No string makes the API
 * answer 5xx.
 *
 * The property test takes every route from the app's own OpenAPI document (a new route is covered
 * as soon as it is registered, and fails here until it has a fixture), builds a valid request
 * from the fixtures below, replaces one string — a path or query parameter, a body field
 * (declared or nested in a free-form object such as `config`), or a new key of a free-form
 * object — with an arbitrary string, and checks the answer and a content hash of every table.
 */

let t: TestApp;
let org: Awaited<ReturnType<TestApp["createOrganization"]>>;
const fx = {
  targetKey: "fuzz-api",
  connectionId: "",
  apiTokenId: "",
  profileId: "",
  sessionId: "",
  digest: "",
  routeId: "",
  subscriptionId: "",
  eventId: "",
  deliveryId: "",
};

const WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TARGET_CONFIG = {
  baseUrl: "https://api.fuzz.example/v1",
  mcpServerUrl: "https://mcp.fuzz.example/mcp",
  oauth2: {
    tokenUrl: "https://auth.fuzz.example/token",
    authorizationUrl: "https://auth.fuzz.example/authorize",
    clientId: "fuzz-client",
    audience: "fuzz-api",
  },
};

async function ok(response: Promise<{ status: number; body: unknown; text: string }>) {
  const answer = await response;
  if (answer.status >= 300) throw new Error(`fixture set-up: ${answer.status} ${answer.text}`);
  // biome-ignore lint/suspicious/noExplicitAny: fixture set-up reads response JSON freely.
  return answer.body as any;
}

beforeAll(async () => {
  t = await createTestApp();
  org = await t.createOrganization("Fuzz");
  const op = t.operatorToken;
  await ok(
    t.call("POST", "/v1/operator/targets", op, {
      targetKey: fx.targetKey,
      variantId: "http-api",
      config: TARGET_CONFIG,
      secrets: { webhookSecret: WHSEC },
    }),
  );
  fx.apiTokenId = (
    await ok(t.call("POST", "/v1/api-tokens", org.admin, { name: "spare", role: "viewer" }))
  ).id;
  fx.connectionId = (
    await ok(
      t.call("POST", "/v1/integration/connections", org.admin, {
        targetKey: fx.targetKey,
        methodId: "api-key",
        displayName: "Fuzz API",
        secrets: { apiKey: "fuzz-api-key-0001" },
      }),
    )
  ).id;
  fx.profileId = (
    await ok(t.call("POST", "/v1/sandbox-profiles", org.admin, { name: "Fuzz profile" }))
  ).id;
  await ok(
    t.call("POST", `/v1/sandbox-profiles/${fx.profileId}/versions`, org.admin, versionBody()),
  );
  const session = await ok(
    t.call("POST", "/v1/sandbox-sessions", org.admin, { profileId: fx.profileId, version: 1 }),
  );
  fx.sessionId = session.id;
  fx.digest = session.planDigest;
  const plan = await ok(
    t.call("GET", `/v1/sandbox-profiles/${fx.profileId}/versions/1/plan`, org.admin),
  );
  fx.routeId = plan.plan.routes[0].id;

  // Webhooks: a target accepting Standard Webhooks, an event through the front door, a
  // subscription (a public address literal: no DNS) and a delivery of the event to it.
  await ok(
    t.call("POST", "/v1/operator/targets", op, {
      targetKey: "fuzz-hooks",
      variantId: "http-api",
      config: { ...TARGET_CONFIG, webhook: { scheme: "standard-webhooks" } },
      secrets: { webhookSecret: WHSEC },
    }),
  );
  await ok(
    t.call("POST", "/v1/integration/connections", org.admin, {
      targetKey: "fuzz-hooks",
      methodId: "api-key",
      displayName: "Fuzz hooks",
      secrets: { apiKey: "fuzz-api-key-0005" },
    }),
  );
  fx.subscriptionId = (
    await ok(
      t.call("POST", "/v1/webhook-subscriptions", org.admin, {
        url: "https://93.184.215.14/hooks",
        eventTypes: ["*"],
      }),
    )
  ).id;
  const event = JSON.stringify({ type: "fuzz.happened", data: {} });
  fx.eventId = (
    await ok(
      t.call("POST", "/p/integration/webhooks/fuzz-hooks", undefined, event, {
        ...signStandardWebhook({
          secret: WHSEC,
          id: "msg_fuzz",
          timestamp: Math.floor(t.clock.now().getTime() / 1000),
          body: event,
        }),
      }),
    )
  ).id;
  fx.deliveryId = (
    await ok(t.call("POST", `/v1/webhook-events/${fx.eventId}/replay`, org.admin))
  ).deliveries[0].id;

  // A GitHub target set up for App installations (the flow's start, setup URL and completion).
  await ok(
    t.call("POST", "/v1/operator/targets", op, {
      targetKey: "fuzz-gh-app",
      variantId: "github-cloud",
      config: { appSlug: "keyway-fuzz" },
      secrets: {
        clientId: "Iv23liFuzz",
        clientSecret: "fuzz-client-secret",
        appPrivateKeyPem: generateKeyPairSync("rsa", {
          modulusLength: 2048,
          privateKeyEncoding: { type: "pkcs1", format: "pem" },
          publicKeyEncoding: { type: "spki", format: "pem" },
        }).privateKey,
      },
    }),
  );
});

afterAll(async () => {
  await t.close();
});

function versionBody() {
  return {
    bindings: [
      {
        connectionId: fx.connectionId,
        kind: "connector",
        config: { pathPrefixes: ["/v1/items"] },
      },
    ],
    egressPolicy: { default: "deny", allowHosts: ["pypi.org"] },
  };
}

// ----- a valid request per route ----------------------------------------------------------------

/** `provider`: no credential (the webhook front door authenticates by signature). */
type Caller = "operator" | "admin" | "gateway" | "provider";

interface RequestParts {
  as: Caller;
  params?: Record<string, string>;
  query?: Record<string, string>;
  body?: unknown;
}

const id = () => ({ id: fx.connectionId });
const target = () => ({ targetKey: fx.targetKey });
const profile = () => ({ id: fx.profileId });
const version = () => ({ id: fx.profileId, v: "1" });
const subscription = () => ({ id: fx.subscriptionId });
const eventQuery = () => ({
  targetKey: "fuzz-hooks",
  type: "http-api.*",
  status: "received",
  receivedAfter: "2020-01-01T00:00:00Z",
  receivedBefore: "2100-01-01T00:00:00+02:00",
  limit: "10",
  before: "whe_ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
});

/** Routes that take input, by `METHOD /path`. Only the fuzzed string makes a request invalid. */
const FIXTURES: Record<string, () => RequestParts> = {
  "POST /v1/operator/organizations": () => ({
    as: "operator",
    body: { name: "Fuzz org", adminTokenName: "first admin" },
  }),
  "POST /v1/api-tokens": () => ({ as: "admin", body: { name: "fuzz token", role: "viewer" } }),
  "DELETE /v1/api-tokens/{id}": () => ({ as: "admin", params: { id: fx.apiTokenId } }),
  "POST /v1/integration/connections": () => ({
    as: "admin",
    body: {
      targetKey: fx.targetKey,
      methodId: "api-key",
      displayName: "Fuzz connection",
      config: {},
      secrets: { apiKey: "fuzz-api-key-0002" },
    },
  }),
  "GET /v1/integration/connections": () => ({
    as: "admin",
    query: { targetKey: fx.targetKey, status: "active" },
  }),
  "GET /v1/integration/connections/{id}": () => ({ as: "admin", params: id() }),
  "PATCH /v1/integration/connections/{id}": () => ({
    as: "admin",
    params: id(),
    body: { displayName: "Renamed connection", config: {} },
  }),
  "DELETE /v1/integration/connections/{id}": () => ({ as: "admin", params: id() }),
  "POST /v1/integration/connections/{id}/secret": () => ({
    as: "admin",
    params: id(),
    body: { secrets: { apiKey: "fuzz-api-key-0003" } },
  }),
  "POST /v1/integration/connections/{id}/test": () => ({ as: "admin", params: id() }),
  "GET /v1/integration/connections/{id}/resources/{kind}": () => ({
    as: "admin",
    params: { ...id(), kind: "repositories" },
  }),
  "POST /v1/integration/connections/oauth2/start": () => ({
    as: "admin",
    body: {
      targetKey: fx.targetKey,
      methodId: "oauth2",
      displayName: "Fuzz OAuth",
      scopes: ["read", "write:items"],
      redirectAfter: "http://127.0.0.1:8080/done?from=fuzz",
    },
  }),
  "GET /v1/integration/connections/oauth2/callback": () => ({
    as: "provider",
    query: {
      state: "fuzz-state-unknown",
      code: "fuzz-code",
      error: "access_denied",
      error_description: "first line",
    },
  }),
  "POST /v1/operator/targets": () => ({
    as: "operator",
    body: {
      targetKey: "fuzz-new",
      variantId: "http-api",
      displayName: "Fuzz new",
      description: "first line\nsecond line",
      enabled: false,
      config: {
        baseUrl: "https://api.new.example/v1",
        mcpServerUrl: "https://mcp.new.example/mcp",
        oauth2: { tokenUrl: "https://auth.new.example/token", audience: "new" },
      },
      secrets: { webhookSecret: WHSEC },
    },
  }),
  "GET /v1/operator/targets/{targetKey}": () => ({ as: "operator", params: target() }),
  "PATCH /v1/operator/targets/{targetKey}": () => ({
    as: "operator",
    params: target(),
    body: { displayName: "Fuzz API", description: "An API", config: TARGET_CONFIG },
  }),
  "POST /v1/operator/targets/{targetKey}/enable": () => ({ as: "operator", params: target() }),
  "POST /v1/operator/targets/{targetKey}/disable": () => ({ as: "operator", params: target() }),
  "PUT /v1/operator/targets/{targetKey}/secrets": () => ({
    as: "operator",
    params: target(),
    body: { secrets: { webhookSecret: WHSEC } },
  }),
  "GET /v1/integration/targets/{targetKey}": () => ({ as: "admin", params: target() }),
  "GET /v1/audit": () => ({ as: "admin", query: { limit: "10", before: "100000" } }),
  "POST /v1/sandbox-profiles": () => ({
    as: "admin",
    body: { name: "Fuzz profile 2", description: "first line\nsecond line" },
  }),
  "GET /v1/sandbox-profiles/{id}": () => ({ as: "admin", params: profile() }),
  "PATCH /v1/sandbox-profiles/{id}": () => ({
    as: "admin",
    params: profile(),
    body: { name: "Fuzz profile", description: "described" },
  }),
  "DELETE /v1/sandbox-profiles/{id}": () => ({ as: "admin", params: profile() }),
  "POST /v1/sandbox-profiles/{id}/versions": () => ({
    as: "admin",
    params: profile(),
    body: versionBody(),
  }),
  "GET /v1/sandbox-profiles/{id}/versions": () => ({ as: "admin", params: profile() }),
  "GET /v1/sandbox-profiles/{id}/versions/{v}": () => ({ as: "admin", params: version() }),
  "GET /v1/sandbox-profiles/{id}/versions/{v}/plan": () => ({ as: "admin", params: version() }),
  "GET /v1/sandbox-profiles/{id}/versions/{v}/diff": () => ({
    as: "admin",
    params: version(),
    query: { against: "1" },
  }),
  "POST /v1/sandbox-sessions": () => ({
    as: "admin",
    body: { profileId: fx.profileId, version: 1 },
  }),
  "GET /v1/sandbox-sessions": () => ({
    as: "admin",
    query: { profileId: fx.profileId, limit: "10", before: fx.sessionId },
  }),
  "GET /v1/sandbox-sessions/{id}": () => ({ as: "admin", params: { id: fx.sessionId } }),
  "DELETE /v1/sandbox-sessions/{id}": () => ({ as: "admin", params: { id: fx.sessionId } }),
  "POST /v1/sandbox-sessions/{id}/refresh": () => ({
    as: "admin",
    params: { id: fx.sessionId },
  }),
  "GET /internal/v1/plans/{digest}": () => ({ as: "gateway", params: { digest: fx.digest } }),
  "POST /internal/v1/credentials/resolve": () => ({
    as: "gateway",
    body: { sessionId: fx.sessionId, routeId: fx.routeId },
  }),
  "POST /internal/v1/credentials/resolve-batch": () => ({
    as: "gateway",
    body: {
      items: [
        {
          sessionId: fx.sessionId,
          routeId: fx.routeId,
          traceparent: `00-${"a".repeat(32)}-${"b".repeat(16)}-01`,
        },
      ],
    },
  }),
  "POST /internal/v1/sessions/liveness": () => ({
    as: "gateway",
    body: { sessionIds: [fx.sessionId, "sess_unknown"] },
  }),
  "POST /p/integration/webhooks/{targetKey}": () => ({
    as: "provider",
    params: { targetKey: fx.targetKey },
  }),
  "POST /v1/webhook-subscriptions": () => ({
    as: "admin",
    body: {
      url: "https://93.184.215.14/hooks?from=keyway",
      description: "first line\nsecond line",
      eventTypes: ["github.pull_request.*", "http-api.invoice.paid"],
      enabled: true,
    },
  }),
  "GET /v1/webhook-subscriptions/{id}": () => ({ as: "admin", params: subscription() }),
  "PATCH /v1/webhook-subscriptions/{id}": () => ({
    as: "admin",
    params: subscription(),
    body: {
      url: "https://93.184.215.15/hooks",
      description: "changed",
      eventTypes: ["*"],
      enabled: true,
    },
  }),
  "DELETE /v1/webhook-subscriptions/{id}": () => ({ as: "admin", params: subscription() }),
  "POST /v1/webhook-subscriptions/{id}/rotate-secret": () => ({
    as: "admin",
    params: subscription(),
  }),
  "GET /v1/webhook-events": () => ({ as: "admin", query: eventQuery() }),
  "GET /v1/webhook-events/{id}": () => ({ as: "admin", params: { id: fx.eventId } }),
  "POST /v1/webhook-events/{id}/replay": () => ({ as: "admin", params: { id: fx.eventId } }),
  "GET /v1/webhook-deliveries/{id}": () => ({ as: "admin", params: { id: fx.deliveryId } }),
  "POST /v1/webhook-deliveries/{id}/replay": () => ({
    as: "admin",
    params: { id: fx.deliveryId },
  }),
  "GET /v1/operator/webhook-events": () => ({
    as: "operator",
    query: { ...eventQuery(), organizationId: org.id },
  }),
  "GET /v1/operator/webhook-events/{id}": () => ({ as: "operator", params: { id: fx.eventId } }),
  "POST /v1/integration/connections/github-app/start": () => ({
    as: "admin",
    body: {
      targetKey: "fuzz-gh-app",
      methodId: "github-app",
      displayName: "Fuzz installation",
      redirectAfter: "http://127.0.0.1:8080/connected?from=fuzz",
    },
  }),
  // An unknown state: refused (403) after the text checks, with an audit entry.
  "POST /v1/integration/connections/github-app/complete": () => ({
    as: "admin",
    body: {
      targetKey: "fuzz-gh-app",
      state: "fuzz-state",
      installationId: "4242",
      setupAction: "install",
      code: "fuzz-code",
    },
  }),
  "GET /p/integration/github-app/{targetKey}/callback": () => ({
    as: "provider",
    params: { targetKey: "fuzz-gh-app" },
    query: {
      installation_id: "4242",
      setup_action: "install",
      state: "fuzz-state",
      code: "fuzz-code",
    },
  }),
};

/**
 * Writes a 4xx may make by design: credential resolution audits every refusal (SPEC §6.3), so a
 * well-formed request naming an unknown session or route leaves one audit entry.
 */
const WRITES_ON_REFUSAL: Record<string, readonly string[]> = {
  "POST /internal/v1/credentials/resolve": ["audit_log"],
  "POST /internal/v1/credentials/resolve-batch": ["audit_log"],
  // The webhook front door audits every refused delivery (SPEC §10).
  "POST /p/integration/webhooks/{targetKey}": ["audit_log"],
  // OAuth2: an open redirect in `redirectAfter` and every refused callback are audited.
  "POST /v1/integration/connections/oauth2/start": ["audit_log"],
  "GET /v1/integration/connections/oauth2/callback": ["audit_log"],
  // A refused GitHub App setup redirect leaves an audit entry and nothing else.
  "POST /v1/integration/connections/github-app/start": ["audit_log"],
  "POST /v1/integration/connections/github-app/complete": ["audit_log"],
  "GET /p/integration/github-app/{targetKey}/callback": ["audit_log"],
};

// ----- routes and their string slots, from the OpenAPI document -----------------------------------

type JsonSchema = {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
};

interface Operation {
  parameters?: { name: string; in: string }[];
  requestBody?: { content?: { "application/json"?: { schema?: JsonSchema } } };
}

type Path = (string | number)[];

/** One string of a request the property replaces. */
type Slot =
  | { in: "path"; name: string }
  | { in: "query"; name: string }
  | { in: "body"; path: Path }
  | { in: "key"; path: Path };

interface RouteUnderTest {
  key: string;
  method: string;
  template: string;
  parameters: { name: string; in: string }[];
  body?: JsonSchema;
}

function describeSlot(slot: Slot): string {
  return slot.in === "path" || slot.in === "query"
    ? `${slot.in}.${slot.name}`
    : `${slot.in === "key" ? "new key in " : ""}${slot.path.join(".") || "body"}`;
}

function slotsOf(route: RouteUnderTest, parts: RequestParts, components: Components): Slot[] {
  const slots: Slot[] = [];
  for (const parameter of route.parameters) {
    if (parameter.in === "path") slots.push({ in: "path", name: parameter.name });
    if (parameter.in === "query") slots.push({ in: "query", name: parameter.name });
  }
  if (route.body) {
    const seen = new Set<string>();
    const add = (slot: Slot & { path: Path }) => {
      const key = `${slot.in}:${slot.path.join(".")}`;
      if (!seen.has(key)) {
        seen.add(key);
        slots.push(slot);
      }
    };
    schemaSlots(route.body, [], components, add);
    valueSlots(parts.body, [], add);
  }
  return slots;
}

type Components = Record<string, JsonSchema>;

function resolve(schema: JsonSchema, components: Components): JsonSchema {
  return schema.$ref
    ? resolve(components[schema.$ref.split("/").at(-1) as string]!, components)
    : schema;
}

/** Declared string fields (nested objects and the first item of arrays), and free-form objects. */
function schemaSlots(
  raw: JsonSchema,
  path: Path,
  components: Components,
  add: (slot: Slot & { path: Path }) => void,
  depth = 0,
): void {
  if (depth > 6) return;
  const schema = resolve(raw, components);
  const types = [schema.type ?? []].flat();
  if (types.includes("string")) add({ in: "body", path });
  for (const branch of [...(schema.anyOf ?? []), ...(schema.oneOf ?? []), ...(schema.allOf ?? [])])
    schemaSlots(branch, path, components, add, depth + 1);
  for (const [name, property] of Object.entries(schema.properties ?? {}))
    schemaSlots(property, [...path, name], components, add, depth + 1);
  if (schema.items) schemaSlots(schema.items, [...path, 0], components, add, depth + 1);
  if (typeof schema.additionalProperties === "object") add({ in: "key", path });
}

/** Strings of the fixture body, such as those inside free-form `config` and `secrets` objects. */
function valueSlots(value: unknown, path: Path, add: (slot: Slot & { path: Path }) => void): void {
  if (typeof value === "string") add({ in: "body", path });
  else if (Array.isArray(value)) {
    value.forEach((item, i) => {
      valueSlots(item, [...path, i], add);
    });
  } else if (value !== null && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) valueSlots(item, [...path, key], add);
  }
}

/** A copy of `body` with `value` at `path`, or with `value` as a new key of the object at `path`. */
function withValue(body: unknown, path: Path, value: string, asKey: boolean): unknown {
  type Container = Record<string | number, unknown>;
  const root = structuredClone(body ?? {}) as Container;
  const parents = asKey ? path : path.slice(0, -1);
  let node = root;
  parents.forEach((step, i) => {
    if (typeof node[step] !== "object" || node[step] === null) {
      node[step] = typeof path[i + 1] === "number" ? [] : {};
    }
    node = node[step] as Container;
  });
  if (asKey) node[value] = "fuzz";
  else node[path[path.length - 1] ?? ""] = value;
  return root;
}

/**
 * Percent-encodes a string for a URL. A lone surrogate has no UTF-8 form: it is sent as the bytes
 * a naive encoder would produce (WTF-8), which servers cannot decode either.
 */
function encodeComponent(value: string): string {
  return [...value]
    .map((char) => {
      const code = char.codePointAt(0) ?? 0;
      if (code < 0xd800 || code > 0xdfff) return encodeURIComponent(char);
      return [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)]
        .map((byte) => `%${byte.toString(16).toUpperCase()}`)
        .join("");
    })
    .join("");
}

function hasLoneSurrogate(value: string): boolean {
  return /\p{Cs}/u.test(value);
}

// ----- the database, before and after -----------------------------------------------------------

let tableNames: string[] = [];

/**
 * A content hash per table. `api_tokens.last_used_at` is left out: authentication records token
 * use in the background (at most once a minute per token), which is not the request's write. So
 * is `spent_gateway_assertions`: authenticating a gateway spends its assertion, whatever the
 * request then does (replay protection, `auth/spent-assertions.ts`).
 */
async function snapshot(): Promise<Map<string, string>> {
  const sql = t.deps.database.sql;
  if (tableNames.length === 0) {
    const rows = await sql<{ name: string }[]>`
      select tablename as name from pg_tables
      where schemaname = 'public' and tablename <> 'spent_gateway_assertions'
      order by tablename`;
    tableNames = rows.map((row) => row.name);
  }
  const query = tableNames
    .map(
      (name) =>
        `select '${name}' as name, md5(coalesce(string_agg(r, ',' order by r), '')) as hash
         from (select (to_jsonb(t) - 'last_used_at')::text as r from "${name}" t) rows`,
    )
    .join(" union all ");
  const rows = await sql.unsafe<{ name: string; hash: string }[]>(query);
  return new Map(rows.map((row) => [row.name, row.hash]));
}

function changedTables(before: Map<string, string>, after: Map<string, string>): string[] {
  return [...after.keys()].filter((name) => before.get(name) !== after.get(name));
}

// ----- arbitrary strings ------------------------------------------------------------------------

const codeUnit = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
  { weight: 2, arbitrary: fc.integer({ min: 0x00, max: 0x1f }) },
  { weight: 1, arbitrary: fc.constantFrom(0x7f, 0x85, 0xa0, 0x2028, 0xfeff, 0xffff) },
  { weight: 1, arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }) },
  { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xffff }) },
);
const shortString = fc
  .array(codeUnit, { maxLength: 32 })
  .map((units) => String.fromCharCode(...units));
const longString = fc
  .tuple(shortString, fc.integer({ min: 1_000, max: 40_000 }))
  .map(([seed, length]) => (seed === "" ? "x" : seed).repeat(length).slice(0, length));
const anyString = fc.oneof(
  { weight: 5, arbitrary: shortString },
  { weight: 1, arbitrary: longString },
);

/** Run for every slot of every route, besides the random strings. */
const EXAMPLES = ["fuzz\u0000value", "\ud800lone", "line\r\nbreak", "x".repeat(70_000)];
const RANDOM_RUNS_PER_SLOT = 2;

// ----- the property -----------------------------------------------------------------------------

async function send(route: RouteUnderTest, parts: RequestParts, slot: Slot, value: string) {
  const params = { ...parts.params };
  const query = { ...parts.query };
  let body = parts.body;
  if (slot.in === "path") params[slot.name] = value;
  else if (slot.in === "query") query[slot.name] = value;
  else body = withValue(parts.body, slot.path, value, slot.in === "key");
  const path = route.template.replace(/\{(\w+)\}/g, (_, name: string) =>
    encodeComponent(params[name] ?? ""),
  );
  const search = Object.entries(query)
    .map(([name, item]) => `${encodeURIComponent(name)}=${encodeComponent(item)}`)
    .join("&");
  const token =
    parts.as === "operator"
      ? t.operatorToken
      : parts.as === "admin"
        ? org.admin
        : parts.as === "gateway"
          ? await t.gatewayAssertion()
          : undefined;
  return t.call(
    route.method,
    search === "" ? path : `${path}?${search}`,
    token,
    route.body ? body : undefined,
  );
}

/** The issue a value breaking the text rules must produce, if it reaches the check as sent. */
function expectedTextIssue(slot: Slot, value: string): { field?: string } | undefined {
  if (slot.in === "body") {
    return textViolation(value, "multi-line") ? { field: slot.path.join(".") } : undefined;
  }
  if (slot.in === "key") return textViolation(value, "single-line") ? {} : undefined;
  // An empty path parameter matches no route; a lone surrogate cannot be percent-decoded, so the
  // server keeps the escapes as they came and the value holds no control character.
  if (value === "" || hasLoneSurrogate(value)) return undefined;
  return textViolation(value, "single-line") ? { field: `${slot.in}.${slot.name}` } : undefined;
}

describe("every string of every API route", () => {
  let routes: RouteUnderTest[] = [];
  let components: Components = {};

  beforeAll(async () => {
    const doc = await t.call("GET", "/openapi.json", undefined);
    components = doc.body.components?.schemas ?? {};
    const paths = doc.body.paths as Record<string, Record<string, Operation>>;
    routes = Object.entries(paths).flatMap(([template, operations]) =>
      Object.entries(operations).map(([method, operation]) => ({
        key: `${method.toUpperCase()} ${template}`,
        method: method.toUpperCase(),
        template,
        parameters: operation.parameters ?? [],
        ...(operation.requestBody?.content?.["application/json"]?.schema
          ? { body: operation.requestBody.content["application/json"].schema }
          : {}),
      })),
    );
  });

  it("has a valid request for every route that takes input", () => {
    expect(routes.length).toBeGreaterThan(40);
    const takesInput = routes.filter((route) => route.parameters.length > 0 || route.body);
    expect(takesInput.filter((route) => !FIXTURES[route.key]).map((r) => r.key)).toEqual([]);
  });

  it("never answers 5xx, names the field of a refused character, and writes nothing on 4xx", async () => {
    let runs = 0;
    for (const route of routes) {
      const fixture = FIXTURES[route.key];
      if (!fixture) continue;
      const slots = slotsOf(route, fixture(), components);
      if (slots.length === 0) continue;
      const property = fc.asyncProperty(
        fc.nat({ max: slots.length - 1 }),
        anyString,
        async (index, value) => {
          runs++;
          const slot = slots[index]!;
          const context = `${route.key} ${describeSlot(slot)} = ${JSON.stringify(value.slice(0, 80))}`;
          const before = await snapshot();
          const answer = await send(route, fixture(), slot, value);
          const changed = changedTables(before, await snapshot());
          expect(answer.status, `${context}: ${answer.text.slice(0, 300)}`).toBeLessThan(500);
          if (answer.status >= 400) {
            const allowed = answer.status === 400 ? [] : (WRITES_ON_REFUSAL[route.key] ?? []);
            expect(
              changed.filter((name) => !allowed.includes(name)),
              context,
            ).toEqual([]);
            expect(answer.body?.error?.code, context).toEqual(expect.any(String));
          }
          const issue = expectedTextIssue(slot, value);
          // A body over the route's size limit is refused before anyone reads it (413).
          if (issue && answer.status !== 413) {
            expect(answer.status, `${context}: ${answer.text.slice(0, 300)}`).toBe(400);
            const issues: { field: string; code: string }[] = answer.body.error.details.issues;
            expect(issues, context).toContainEqual(
              expect.objectContaining({
                code: "invalid_characters",
                ...(issue.field !== undefined ? { field: issue.field } : {}),
              }),
            );
          }
        },
      );
      await fc.assert(property, {
        // The examples are the first of the runs.
        numRuns: slots.length * (EXAMPLES.length + RANDOM_RUNS_PER_SLOT),
        examples: slots.flatMap((_, index) =>
          EXAMPLES.map((value): [number, string] => [index, value]),
        ),
        endOnFailure: true,
        // The default report prints the whole counterexample, up to 70,000 characters of it.
        reporter: (details) => {
          if (!details.failed) return;
          const cause = details.errorInstance instanceof Error ? details.errorInstance.message : "";
          throw new Error(`${route.key}, after ${details.numRuns} runs: ${cause.slice(0, 2000)}`);
        },
      });
    }
    // A few hundred requests in all: every slot with each example and some random strings.
    expect(runs).toBeGreaterThan(200);
  }, 180_000);
});

describe("what bad text gets (SPEC §10)", () => {
  /** Sends a request that must be refused with 400 naming `field`, and checks nothing changed. */
  async function refused(
    method: string,
    path: string,
    token: string,
    body: unknown,
    field: string,
  ): Promise<{ message: string; text: string }> {
    const before = await snapshot();
    const answer = await t.call(method, path, token, body);
    expect(answer.status, answer.text).toBe(400);
    expect(changedTables(before, await snapshot())).toEqual([]);
    const issue = answer.body.error.details.issues.find(
      (candidate: { field: string }) => candidate.field === field,
    );
    expect(issue, answer.text).toMatchObject({ code: "invalid_characters" });
    return { message: issue.message, text: answer.text };
  }

  it("refuses NUL in path parameters and bodies, and lone surrogates in names", async () => {
    const nul = "%00";
    for (const path of [
      `/v1/sandbox-sessions/sess${nul}`,
      `/v1/sandbox-profiles/prof${nul}`,
      `/v1/integration/connections/conn${nul}`,
      `/v1/integration/targets/${fx.targetKey}${nul}`,
    ]) {
      await refused(
        "GET",
        path,
        org.admin,
        undefined,
        path.includes("targets") ? "path.targetKey" : "path.id",
      );
    }
    await refused("DELETE", `/v1/api-tokens/tok${nul}`, org.admin, undefined, "path.id");
    await refused(
      "GET",
      `/v1/sandbox-sessions?profileId=p${nul}`,
      org.admin,
      undefined,
      "query.profileId",
    );
    await refused(
      "POST",
      "/v1/operator/organizations",
      t.operatorToken,
      { name: "a\u0000b" },
      "name",
    );
    await refused(
      "POST",
      "/v1/api-tokens",
      org.admin,
      { name: "a\u0000b", role: "viewer" },
      "name",
    );
    await refused("POST", "/v1/sandbox-profiles", org.admin, { name: "Fuzz \ud800" }, "name");
    const binding = versionBody();
    binding.bindings[0]!.config = { pathPrefixes: ["/v1/\u0000"] };
    await refused(
      "POST",
      `/v1/sandbox-profiles/${fx.profileId}/versions`,
      org.admin,
      binding,
      "bindings.0.config.pathPrefixes.0",
    );
    await refused(
      "PATCH",
      `/v1/integration/connections/${fx.connectionId}`,
      org.admin,
      { config: { "bad\u0000key": 1 } },
      "config.bad\\u0000key",
    );
  });

  it("keeps names to one line and lets descriptions span lines", async () => {
    await refused("POST", "/v1/sandbox-profiles", org.admin, { name: "two\nlines" }, "name");
    await refused(
      "POST",
      "/v1/integration/connections",
      org.admin,
      {
        targetKey: fx.targetKey,
        methodId: "api-key",
        displayName: "tab\there",
        secrets: { apiKey: "fuzz-api-key-0004" },
      },
      "displayName",
    );
    const described = await t.call("POST", "/v1/sandbox-profiles", org.admin, {
      name: "Described",
      description: "first line\r\nsecond line\n\tindented",
    });
    expect(described.status).toBe(201);
    expect(described.body.description).toBe("first line\r\nsecond line\n\tindented");
  });

  it("refuses CR, LF and TAB in URL settings, naming the field, on create and update", async () => {
    const op = t.operatorToken;
    for (const [field, config] of [
      ["config.baseUrl", { ...TARGET_CONFIG, baseUrl: "https://api.fuzz.example/v1\r\n" }],
      ["config.baseUrl", { ...TARGET_CONFIG, baseUrl: "https://api.fuzz.example/v\n1" }],
      ["config.mcpServerUrl", { ...TARGET_CONFIG, mcpServerUrl: "https://mcp.fuzz.example/\tmcp" }],
      [
        "config.oauth2.tokenUrl",
        { ...TARGET_CONFIG, oauth2: { tokenUrl: "https://auth.fuzz.example/token\r\n" } },
      ],
    ] as const) {
      await refused(
        "POST",
        "/v1/operator/targets",
        op,
        { targetKey: "fuzz-url", variantId: "http-api", config },
        field,
      );
      await refused("PATCH", `/v1/operator/targets/${fx.targetKey}`, op, { config }, field);
    }
  });

  it("refuses control characters in secrets when they are written, except in a PEM key", async () => {
    const op = t.operatorToken;
    const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\r\nX-Injected: 1";
    const target = await refused(
      "PUT",
      `/v1/operator/targets/${fx.targetKey}/secrets`,
      op,
      { secrets: { webhookSecret: secret } },
      "secrets.webhookSecret",
    );
    expect(target.text).not.toContain("X-Injected");

    for (const apiKey of ["sk-live\r\nX-Injected: 1", "sk-live-\u00e9", " sk-live"]) {
      const created = await refused(
        "POST",
        "/v1/integration/connections",
        org.admin,
        {
          targetKey: fx.targetKey,
          methodId: "api-key",
          displayName: "Bad key",
          secrets: { apiKey },
        },
        "secrets.apiKey",
      );
      expect(created.text).not.toContain("sk-live");
      await refused(
        "POST",
        `/v1/integration/connections/${fx.connectionId}/secret`,
        org.admin,
        { secrets: { apiKey } },
        "secrets.apiKey",
      );
    }

    // A GitHub App private key spans lines; its client secret does not.
    await ok(
      t.call("POST", "/v1/operator/targets", op, {
        targetKey: "fuzz-gh",
        variantId: "github-cloud",
      }),
    );
    const pem =
      "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
    const stored = await t.call("PUT", "/v1/operator/targets/fuzz-gh/secrets", op, {
      secrets: { appPrivateKeyPem: pem, appId: "12345" },
    });
    expect(stored.status, stored.text).toBe(200);
    await refused(
      "PUT",
      "/v1/operator/targets/fuzz-gh/secrets",
      op,
      { secrets: { appPrivateKeyPem: pem, clientSecret: "line\none" } },
      "secrets.clientSecret",
    );
  });
});
