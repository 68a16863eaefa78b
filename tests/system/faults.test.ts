import { chmod, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createDatabase, type RunningPostgres, startEmbeddedPostgres } from "@keyway/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createApiKeyConnection,
  createHttpApiTarget,
  createOrganization,
  type RecordingUpstream,
  revokeSession,
  type Stack,
  type StartedSession,
  sendThroughGateway,
  startRecordingUpstream,
  startSession,
  startSessionWith,
  startStack,
  untilRefused,
} from "./support/stack";

/**
 * Faults under steady load (SPEC §10 "database unreachable or frozen"): PostgreSQL killed and
 * restarted, PostgreSQL frozen (SIGSTOP, then SIGCONT), the API killed and restarted, the gateway
 * killed and restarted — one after the other, while a sandbox keeps sending requests through the
 * gateway and a writer keeps creating sessions and profiles through the API.
 *
 * The suite has its own PostgreSQL (killing it disturbs no other test), run so that a commit is
 * written to the OS before it is acknowledged (fsync off, synchronous_commit on: durable across
 * a process crash) and with commit timestamps on, so "nothing committed after its deadline" is
 * checked against the time each transaction really committed. The API runs as its own process
 * from its bundle, so it can be killed. Checked afterwards: no acknowledged write lost, no write
 * committed after its request's deadline, the audit chain verifies, a session revoked around each
 * restart is refused by the gateway, and the answers and readiness seen during each fault.
 */

const REQUEST_TIMEOUT_MS = 3_000;
/** How long PostgreSQL stays frozen: well past the request deadline. */
const FREEZE_MS = REQUEST_TIMEOUT_MS + 5_000;
/** How long a killed service stays down. */
const DOWN_MS = 3_000;
/**
 * Between a writer starting a request and the API starting its deadline: the request's travel
 * and the API's event loop. A commit later than start + timeout + this broke the rule.
 */
const DEADLINE_SLACK_MS = 1_500;

type Phase = "warm-up" | "pg-kill" | "pg-freeze" | "api-kill" | "gateway-kill" | "cool-down";

interface Write {
  phase: Phase;
  kind: "session" | "profile";
  /** Profile name: how a stored profile is traced back to its request. */
  name: string;
  /** Session id, when acknowledged. */
  sessionId?: string;
  startedAtMs: number;
  endedAtMs: number;
  /** 0: no answer (connection refused or reset). */
  status: number;
  code?: string;
  retryAfter: string | null;
}

interface Sent {
  phase: Phase;
  answer: string;
}

let root: string;
let pg: RunningPostgres;
/** False between a SIGKILL and the restart: stopping a dead server would wait forever. */
let pgRunning = false;
let dataDir: string;
let stack: Stack;
let upstream: RecordingUpstream;
let orgToken: string;
let profileId: string;
let steady: StartedSession & { profileId: string };
let phase: Phase = "warm-up";
const writes: Write[] = [];
const sent: Sent[] = [];
let loadRunning = false;
let load: Promise<unknown> = Promise.resolve();

const pgSettings = { synchronous_commit: "on", track_commit_timestamp: "on" };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "keyway-faults-"));
  // When tests run as root, PostgreSQL runs as `postgres`, which must reach the data directory.
  await chmod(root, 0o755);
  dataDir = join(root, "data");
  pg = await startEmbeddedPostgres({ dataDir, durable: false, settings: pgSettings });
  pgRunning = true;
  await pg.createDatabase("keyway");
  stack = await startStack("faults", {
    databaseUrl: pg.url("keyway"),
    controlPlaneProcess: true,
    env: {
      KEYWAY_API__REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      KEYWAY_DATABASE__CONNECT_TIMEOUT_MS: "2000",
      // Sessions in use are re-confirmed every 2 s: the bound on a revocation notice lost in a
      // restart, and how fast this suite sees one applied.
      KEYWAY_GATEWAY__LIVENESS__RECHECK_SECONDS: "2",
    },
  });
  upstream = await startRecordingUpstream();
  await createHttpApiTarget(stack, "faults-api", { baseUrl: `${upstream.url}/v1` });
  orgToken = await createOrganization(stack, "Faults");
  const connectionId = await createApiKeyConnection(stack, orgToken, {
    targetKey: "faults-api",
    secrets: { apiKey: "sk-faults-5e1d" },
  });
  steady = await startSessionWith(stack, orgToken, [{ connectionId, kind: "connector" }]);
  profileId = steady.profileId;
});

afterAll(async () => {
  loadRunning = false;
  await load;
  await upstream?.close();
  await stack?.close();
  if (pgRunning) await pg.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

// ----- load -------------------------------------------------------------------------------------

async function write(kind: Write["kind"], n: number): Promise<void> {
  const name = `w-${n}`;
  const startedAtMs = Date.now();
  const record: Write = {
    phase,
    kind,
    name,
    startedAtMs,
    endedAtMs: 0,
    status: 0,
    retryAfter: null,
  };
  try {
    const response = await fetch(
      `${stack.apiUrl}${kind === "session" ? "/v1/sandbox-sessions" : "/v1/sandbox-profiles"}`,
      {
        method: "POST",
        headers: { authorization: `Bearer ${orgToken}`, "content-type": "application/json" },
        body: JSON.stringify(kind === "session" ? { profileId } : { name }),
        // Far beyond any deadline: the API, not the client, decides when a request has failed.
        signal: AbortSignal.timeout(30_000),
      },
    );
    const body = (await response.json()) as { id?: string; error?: { code: string } };
    record.status = response.status;
    record.retryAfter = response.headers.get("retry-after");
    if (body.error) record.code = body.error.code;
    if (kind === "session" && response.status === 201) record.sessionId = body.id;
  } catch {
    // No answer: the API was killed, or refused the connection.
  }
  record.endedAtMs = Date.now();
  writes.push(record);
}

function startLoad(): void {
  loadRunning = true;
  let n = 0;
  const writer = async () => {
    while (loadRunning) {
      n++;
      // Two profiles for each session: a profile names its request, so even one nobody was
      // told about is traced to its deadline.
      await write(n % 3 === 0 ? "session" : "profile", n);
      await sleep(50);
    }
  };
  const sandbox = async () => {
    while (loadRunning) {
      const answer = await sendThroughGateway(steady.proxyUrl, `${upstream.url}/v1/steady`);
      sent.push({ phase, answer });
      await sleep(50);
    }
  };
  load = Promise.all([writer(), writer(), writer(), sandbox()]);
}

// ----- PostgreSQL processes ---------------------------------------------------------------------

/** The postmaster (first line of `postmaster.pid`) and every process it started. */
async function postgresProcesses(): Promise<number[]> {
  const pidFile = await readFile(join(dataDir, "postmaster.pid"), "utf8");
  const postmaster = Number(pidFile.split("\n")[0]);
  const children: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    // "pid (comm) state ppid …": the name may hold spaces and parentheses, so read after the last ")".
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid === postmaster) children.push(Number(entry));
  }
  return [postmaster, ...children];
}

function signal(pids: readonly number[], name: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, name);
    } catch {
      // Already gone.
    }
  }
}

async function untilGone(pids: readonly number[]): Promise<void> {
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 200 && pids.some(alive); i++) await sleep(50);
  if (pids.some(alive)) throw new Error("PostgreSQL processes survived SIGKILL");
}

// ----- probes -----------------------------------------------------------------------------------

async function status(url: string): Promise<number> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    await response.body?.cancel();
    return response.status;
  } catch {
    return 0;
  }
}

const apiReadiness = () => status(`${stack.apiUrl}/readyz`);
const gatewayReadiness = () => status(`${stack.gateway.adminUrl}/readyz`);

async function gatewayFeedConnected(): Promise<boolean> {
  try {
    const response = await fetch(`${stack.gateway.adminUrl}/readyz`);
    const body = (await response.json()) as { checks?: { events?: boolean } };
    return body.checks?.events === true;
  } catch {
    return false;
  }
}

async function until(probe: () => Promise<boolean>, limitMs: number, what: string): Promise<void> {
  const started = performance.now();
  while (!(await probe())) {
    if (performance.now() - started > limitMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** A new session, used once through the gateway so the gateway has confirmed it live. */
async function confirmedSession(): Promise<StartedSession> {
  const session = await startSession(stack, orgToken, profileId);
  expect(await sendThroughGateway(session.proxyUrl, `${upstream.url}/v1/confirm`)).toBe("200");
  return session;
}

/** Revokes once the API can write again, then expects the gateway to refuse the session. */
async function expectRevocationHolds(session: StartedSession): Promise<void> {
  let revoked = 0;
  for (let i = 0; i < 100 && revoked !== 204; i++) {
    revoked = await revokeSession(stack.apiUrl, orgToken, session.id);
    if (revoked !== 204) await sleep(100);
  }
  expect(revoked).toBe(204);
  // Within the liveness bounds: the event, a resync, or the 2 s re-check. Right after a
  // PostgreSQL restart a credential resolution can still meet an API pool connection the restart
  // broke and answer 502 `credential_unavailable` (fail closed, never 200): poll past those.
  const started = performance.now();
  let refused = await untilRefused(session.proxyUrl, `${upstream.url}/v1/revoked`, 15_000);
  while (refused.answer.startsWith("502 ") && performance.now() - started < 15_000) {
    await sleep(100);
    refused = await untilRefused(session.proxyUrl, `${upstream.url}/v1/revoked`, 15_000);
  }
  expect(refused.answer).toContain("407");
}

// ----- the suite --------------------------------------------------------------------------------

describe("faults under steady load", () => {
  it("keeps every promise through PostgreSQL, API and gateway failures", async () => {
    startLoad();
    await sleep(1_000);

    // PostgreSQL SIGKILL and restart.
    phase = "pg-kill";
    const beforeKill = await confirmedSession();
    const killed = await postgresProcesses();
    signal(killed, "SIGKILL");
    pgRunning = false;
    await untilGone(killed);
    await sleep(500);
    expect(await apiReadiness()).toBe(503);
    // The gateway can still serve (its feed to the API is up): ready.
    expect(await gatewayReadiness()).toBe(200);
    await sleep(DOWN_MS);
    pg = await startEmbeddedPostgres({
      dataDir,
      port: pg.port,
      durable: false,
      settings: pgSettings,
    });
    pgRunning = true;
    await until(async () => (await apiReadiness()) === 200, 30_000, "the API to be ready");
    await expectRevocationHolds(beforeKill);

    // PostgreSQL frozen (every process stopped), then resumed.
    phase = "pg-freeze";
    const beforeFreeze = await confirmedSession();
    const frozen = await postgresProcesses();
    signal(frozen, "SIGSTOP");
    try {
      const started = performance.now();
      expect(await apiReadiness()).toBe(503);
      expect(await gatewayReadiness()).toBe(200);
      await sleep(Math.max(0, FREEZE_MS - (performance.now() - started)));
    } finally {
      signal(frozen, "SIGCONT");
    }
    await until(async () => (await apiReadiness()) === 200, 30_000, "the API to be ready");
    await expectRevocationHolds(beforeFreeze);

    // API SIGKILL and restart.
    phase = "api-kill";
    const beforeApiKill = await confirmedSession();
    const unseen = await startSession(stack, orgToken, profileId);
    await stack.killControlPlane();
    expect(await gatewayReadiness()).toBe(200);
    // Never confirmed: refused (fail closed), and at once.
    const askedAt = performance.now();
    expect(await sendThroughGateway(unseen.proxyUrl, `${upstream.url}/v1/unseen`)).toBe(
      "502 control_plane_unavailable",
    );
    expect(performance.now() - askedAt).toBeLessThan(5_000);
    await sleep(DOWN_MS);
    await stack.restartControlPlane({ waitForGateway: false });
    const back = performance.now();
    await until(gatewayFeedConnected, 30_000, "the gateway's event feed");
    // The bound: a returning control plane is picked up within about 2 s.
    expect(performance.now() - back).toBeLessThan(3_000);
    await expectRevocationHolds(beforeApiKill);
    expect(await sendThroughGateway(unseen.proxyUrl, `${upstream.url}/v1/unseen`)).toBe("200");

    // Gateway SIGKILL and restart; one session revoked while it is down, one just after.
    phase = "gateway-kill";
    const revokedWhileDown = await confirmedSession();
    const revokedAfter = await confirmedSession();
    await stack.gateway.kill();
    expect(await revokeSession(stack.apiUrl, orgToken, revokedWhileDown.id)).toBe(204);
    await sleep(DOWN_MS);
    await stack.gateway.restart();
    const refused = await sendThroughGateway(revokedWhileDown.proxyUrl, `${upstream.url}/v1/x`);
    expect(refused).toContain("407");
    await expectRevocationHolds(revokedAfter);

    phase = "cool-down";
    await sleep(1_000);
    loadRunning = false;
    await load;

    await checkWrites();
    checkAnswers();
    await checkAuditChain();
    checkLogs();
  });
});

// ----- checks -----------------------------------------------------------------------------------

async function checkWrites(): Promise<void> {
  const database = createDatabase(pg.url("keyway"), { max: 1 });
  const { sql } = database;
  try {
    // When each row's transaction committed, by the server's clock (this machine's).
    const committedAtMs = sql`(extract(epoch from pg_xact_commit_timestamp(xmin)) * 1000)::float8`;
    const profiles = await sql<{ name: string; committedAt: number }[]>`
      select name, ${committedAtMs} as "committedAt" from sandbox_profiles where name like 'w-%'`;
    const sessions = await sql<{ id: string; committedAt: number }[]>`
      select id, ${committedAtMs} as "committedAt" from sandbox_sessions`;
    const storedProfiles = new Map(profiles.map((row) => [row.name, row.committedAt]));
    const storedSessions = new Map(sessions.map((row) => [row.id, row.committedAt]));
    const byName = new Map(writes.map((w) => [w.name, w]));

    // The load really met every fault: some writes were refused during each database fault.
    for (const fault of ["pg-kill", "pg-freeze"] as const) {
      expect(writes.some((w) => w.phase === fault && w.status === 503)).toBe(true);
    }

    // No acknowledged write lost.
    const acknowledged = writes.filter((w) => w.status === 201);
    expect(acknowledged.length).toBeGreaterThan(20);
    for (const w of acknowledged) {
      if (w.kind === "profile") expect(storedProfiles.has(w.name), w.name).toBe(true);
      else expect(storedSessions.has(w.sessionId ?? ""), w.sessionId).toBe(true);
    }

    // Nothing committed after its request's deadline, acknowledged or not.
    const late: string[] = [];
    const deadlineOf = (w: Write) => w.startedAtMs + REQUEST_TIMEOUT_MS + DEADLINE_SLACK_MS;
    for (const [name, committedAt] of storedProfiles) {
      const w = byName.get(name);
      if (w === undefined) throw new Error(`profile ${name} was never asked for`);
      if (committedAt > deadlineOf(w)) late.push(`${name} (${w.phase})`);
    }
    for (const w of acknowledged.filter((a) => a.kind === "session")) {
      const committedAt = storedSessions.get(w.sessionId ?? "");
      if (committedAt !== undefined && committedAt > deadlineOf(w)) late.push(`${w.sessionId}`);
    }
    expect(late).toEqual([]);
  } finally {
    await database.close();
  }
}

function checkAnswers(): void {
  // Every answer the API gave came within the deadline (plus travel), and every failure was a
  // 503 service_unavailable with Retry-After: never a 500, never a hang.
  for (const w of writes.filter((x) => x.status !== 0)) {
    expect(w.endedAtMs - w.startedAtMs, `${w.name} ${w.phase}`).toBeLessThan(
      REQUEST_TIMEOUT_MS + 2_000,
    );
    if (w.status === 201) continue;
    expect({ status: w.status, code: w.code }).toEqual({
      status: 503,
      code: "service_unavailable",
    });
    expect(Number(w.retryAfter)).toBeGreaterThan(0);
  }

  // The sandbox was served through every fault but the gateway's own; failures were the
  // documented 502s, and no session was refused for being revoked.
  const expected = new Set(["200", "502 control_plane_unavailable", "502 credential_unavailable"]);
  for (const fault of ["pg-kill", "pg-freeze", "api-kill"] as const) {
    const answers = sent.filter((s) => s.phase === fault).map((s) => s.answer);
    expect(answers).toContain("200");
    for (const answer of answers) {
      // On a failure, the phase and what the gateway and the API logged about refusals. A live
      // session was refused once (407) under full-suite load, 2026-12-06: its request had joined
      // a revoked session's credential resolution (fixed; shared-resolution.integration.test.ts).
      const context = expected.has(answer) ? "" : refusalContext();
      expect(expected, `${fault}: ${answer}${context}`).toContain(answer);
    }
  }
  expect(sent.filter((s) => s.phase === "cool-down").map((s) => s.answer)).toContain("200");
}

/** The gateway's and the API's log lines about refused sessions or tokens. */
function refusalContext(): string {
  const pattern = /407|proxy_auth|revoked|not live|session_not_live|token|jwks/i;
  const lines = [
    ...stack
      .gatewayOutput()
      .split("\n")
      .filter((line) => pattern.test(line)),
    ...stack.controlPlaneLogs.filter((line) => pattern.test(line)),
  ];
  return `\n${lines.slice(-40).join("\n")}`;
}

async function checkAuditChain(): Promise<void> {
  const verified = await stack.apiOk(stack.operatorToken, "GET", "/v1/audit/verify");
  expect(verified).toMatchObject({ ok: true });
}

function checkLogs(): void {
  const logs = stack.controlPlaneLogs.join("\n");
  // The cause is named (a refused or lost connection), never the failed query or its values.
  const unavailable = stack.controlPlaneLogs
    .flatMap((line) => line.split("\n"))
    .filter((line) => line.includes('"msg":"database unavailable"'))
    .map((line) => JSON.parse(line) as { code?: unknown });
  expect(unavailable.length).toBeGreaterThan(0);
  for (const line of unavailable) expect(line.code).toMatch(/^[A-Z_0-9]+$/);
  expect(logs).not.toContain("Failed query");
  expect(logs).not.toContain("params:");
}
