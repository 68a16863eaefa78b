import { spawn } from "node:child_process";
import { mkdtemp, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { getFreePort, type RunningServer, startHttpServer } from "@keyway/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CliRun,
  type CliTestControlPlane,
  runKeyway,
  startCliTestControlPlane,
} from "./testing/control-plane";

/**
 * Every API command against the real control plane (`startControlPlane`, as `pnpm start` runs
 * it, listening on a loopback port over a fresh PostgreSQL database). Most commands run through
 * `runCli` in this process over real HTTP; the ones whose contract is about the process — secrets
 * from standard input and never in the process's arguments, the stored login, exit codes and
 * one-line errors — run `main.ts` as a child process.
 */

/** Tests that start `main.ts` as a process: each start pays for tsx (seconds on a busy 2-core machine). */
const CHILD_TIMEOUT = 180_000;
const repo = fileURLToPath(new URL("../../..", import.meta.url));
const mainPath = join(repo, "apps/cli/src/main.ts");

let dir: string;
let controlPlane: CliTestControlPlane;
let operatorToken: string;
let upstream: RunningServer;
/** Everything every command printed, checked for secrets at the end. */
const allOutput: string[] = [];

type Result = CliRun;

/** `keyway …` in this process, with `token` as KEYWAY_TOKEN and `stdin` as piped standard input. */
function keyway(token: string, argv: string[], stdin?: string): Promise<Result> {
  return keywayWithEnv(
    { KEYWAY_URL: controlPlane.url, KEYWAY_TOKEN: token, HOME: dir },
    argv,
    stdin,
  );
}

/** `keyway …` in this process with exactly `env` as its environment. */
async function keywayWithEnv(
  env: Record<string, string>,
  argv: string[],
  stdin?: string,
): Promise<Result> {
  const result = await runKeyway(argv, {
    env,
    cwd: dir,
    stdin: {
      isTTY: false,
      readAll: async () => stdin ?? "",
      promptHidden: () => Promise.reject(new Error("no terminal in tests")),
    },
  });
  allOutput.push(result.stdout, result.stderr);
  return result;
}

/** Like `keyway`, expecting exit 0 and JSON on stdout. */
// biome-ignore lint/suspicious/noExplicitAny: tests read the CLI's JSON freely and assert on it.
async function keywayJson(token: string, argv: string[], stdin?: string): Promise<any> {
  const result = await keyway(token, [...argv, "--json"], stdin);
  if (result.code !== 0)
    throw new Error(`keyway ${argv.join(" ")}: ${result.code} ${result.stderr}`);
  return JSON.parse(result.stdout);
}

/**
 * `main.ts` as its own process. `onStart` sees the child's pid before standard input is written
 * (and closed), while the CLI waits for it.
 */
function keywayProcess(
  argv: string[],
  options: {
    env: Record<string, string>;
    stdin?: string;
    onStart?: (pid: number) => Promise<void>;
  },
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", mainPath, ...argv], {
      cwd: repo,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...options.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    child.once("error", reject);
    child.once("close", (code) => {
      allOutput.push(stdout, stderr);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    const feed = async () => {
      if (options.onStart && child.pid !== undefined) await options.onStart(child.pid);
      child.stdin.end(options.stdin ?? "");
    };
    feed().catch((error: unknown) => {
      child.kill();
      reject(error);
    });
  });
}

beforeAll(async () => {
  controlPlane = await startCliTestControlPlane("cli-api");
  dir = controlPlane.dir;
  operatorToken = controlPlane.operatorToken;
  // The http-api target's upstream (and a webhook subscriber's URL).
  upstream = await startHttpServer(async (_request, response) => {
    response.writeHead(200, { "content-type": "application/json" });
    response.end('{"ok":true}');
  });
});

afterAll(async () => {
  await upstream?.close();
  await controlPlane?.close();
});

const API_KEY = "sk-cli-secret-0123456789abcdef";
const ROTATED_KEY = "sk-cli-rotated-fedcba9876543210";
const WEBHOOK_SECRET = `whsec_${Buffer.from("cli-test-webhook-secret-32-bytes!").toString("base64")}`;

describe("keyway against the real API", () => {
  let admin: string;
  let organizationId: string;
  let connectionId: string;
  let profileId: string;

  it(
    "login keeps a token from standard input in a 0600 file; later commands use it; logout removes it",
    async () => {
      const home = await mkdtemp(join(dir, "home-"));
      const env = { HOME: home, KEYWAY_URL: controlPlane.url };
      const login = await keywayProcess(["login"], { env, stdin: `${operatorToken}\n` });
      expect(login).toMatchObject({ code: 0 });
      expect(login.stdout).toContain("as the operator");
      const path = join(home, ".config", "keyway", "credentials.json");
      expect((await stat(path)).mode & 0o777).toBe(0o600);
      expect((await stat(join(home, ".config", "keyway"))).mode & 0o777).toBe(0o700);
      expect(JSON.parse(await readFile(path, "utf8"))).toEqual({
        url: controlPlane.url,
        token: operatorToken,
      });

      // No KEYWAY_URL or KEYWAY_TOKEN: the stored login answers.
      const listed = await keywayProcess(["organizations", "list", "--json"], {
        env: { HOME: home },
      });
      expect(listed.code).toBe(0);
      expect(JSON.parse(listed.stdout)).toEqual({ items: [] });

      const logout = await keywayProcess(["logout"], { env: { HOME: home } });
      expect(logout).toMatchObject({ code: 0, stdout: `removed ${path}\n` });
      await expect(stat(path)).rejects.toThrow();
      const after = await keywayProcess(["organizations", "list"], { env: { HOME: home } });
      expect(after.code).toBe(2);
      expect(after.stderr).toMatch(/^error: config: no API configured: run `keyway login/);

      // A token the API refuses is not stored; the error is the API's code, on one line.
      const refused = await keywayProcess(["login", "--url", controlPlane.url], {
        env: { HOME: home },
        stdin: "kw_not-a-real-token",
      });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toBe("error: unauthorized: missing or invalid bearer token\n");
      await expect(stat(path)).rejects.toThrow();
    },
    CHILD_TIMEOUT,
  );

  it("organizations create, list and show", async () => {
    const created = await keywayJson(operatorToken, ["organizations", "create", "Acme"]);
    expect(created.organization).toMatchObject({ name: "Acme" });
    expect(created.adminToken.token).toMatch(/^kw_/);
    admin = created.adminToken.token;
    organizationId = created.organization.id;

    const table = await keyway(operatorToken, ["organizations", "list"]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^id\s+name\s+created\n/);
    expect(table.stdout).toContain(`${organizationId}  Acme`);
    expect(await keywayJson(admin, ["organizations", "show"])).toMatchObject({
      id: organizationId,
      name: "Acme",
    });
    expect(
      await keywayJson(operatorToken, ["organizations", "show", organizationId]),
    ).toMatchObject({ name: "Acme" });
    const missing = await keyway(operatorToken, ["organizations", "show", "org_nope"]);
    expect(missing).toMatchObject({
      code: 1,
      stderr: "error: not_found: no organization org_nope\n",
    });
    // An organization token on an operator route: the API's 403, one line, exit 1.
    const forbidden = await keyway(admin, ["organizations", "list"]);
    expect(forbidden.code).toBe(1);
    expect(forbidden.stderr).toMatch(/^error: forbidden: this route needs an operator token\n$/);
  });

  it("tokens create, list and revoke", async () => {
    const created = await keywayJson(admin, ["tokens", "create", "ci", "--role", "viewer"]);
    expect(created).toMatchObject({ name: "ci", role: "viewer" });
    const listed = await keywayJson(admin, ["tokens", "list"]);
    expect(listed.items.map((t: { name: string }) => t.name)).toContain("ci");
    expect(JSON.stringify(listed)).not.toContain(created.token);
    expect((await keyway(created.token, ["organizations", "show"])).code).toBe(0);

    const revoked = await keyway(admin, ["tokens", "revoke", created.id]);
    expect(revoked).toMatchObject({ code: 0, stdout: `revoked ${created.id}\n` });
    const refused = await keyway(created.token, ["organizations", "show"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error: unauthorized: /);
    const badRole = await keyway(admin, ["tokens", "create", "x", "--role", "owner"]);
    expect(badRole.code).toBe(1);
    expect(badRole.stderr).toMatch(/^error: invalid_request: .*role/);
  });

  it("targets create, list, show, disable, enable, configure (secrets from standard input) and catalog", async () => {
    const created = await keywayJson(operatorToken, [
      "targets",
      "create",
      "demo-api",
      "--variant",
      "http-api",
      "--set",
      `baseUrl=${upstream.url}/v1`,
    ]);
    expect(created).toMatchObject({ targetKey: "demo-api", enabled: true, configValid: true });
    const table = await keyway(operatorToken, ["targets", "list"]);
    expect(table.stdout).toMatch(/demo-api\s+http-api\s+connector\s+yes\s+yes\s+api/);
    expect((await keywayJson(operatorToken, ["targets", "show", "demo-api"])).config).toEqual({
      baseUrl: `${upstream.url}/v1`,
    });

    expect(await keywayJson(operatorToken, ["targets", "disable", "demo-api"])).toMatchObject({
      enabled: false,
    });
    const catalogWhileDisabled = await keywayJson(admin, ["targets", "catalog"]);
    expect(catalogWhileDisabled.items.map((t: { targetKey: string }) => t.targetKey)).not.toContain(
      "demo-api",
    );
    expect(await keywayJson(operatorToken, ["targets", "enable", "demo-api"])).toMatchObject({
      enabled: true,
    });

    const configured = await keywayJson(
      operatorToken,
      [
        "targets",
        "configure",
        "demo-api",
        "--set",
        'webhook={"scheme":"standard-webhooks"}',
        "--display-name",
        "Demo API",
        "--secret",
        "webhookSecret",
      ],
      WEBHOOK_SECRET,
    );
    expect(configured).toMatchObject({
      displayName: "Demo API",
      config: { baseUrl: `${upstream.url}/v1`, webhook: { scheme: "standard-webhooks" } },
      secretFields: ["webhookSecret"],
    });

    const catalog = await keywayJson(admin, ["targets", "catalog", "demo-api"]);
    expect(catalog.connectionMethods.map((m: { id: string }) => m.id)).toContain("api-key");
    const human = await keyway(admin, ["targets", "catalog"]);
    expect(human.stdout).toMatch(/demo-api\s+Demo API\s+connector\s+.*api-key: apiKey/);

    const nothing = await keyway(operatorToken, ["targets", "configure", "demo-api"]);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toMatch(/^error: usage: nothing to change/);
  });

  it(
    "connections create reads the API key from standard input, never from the process's arguments",
    async () => {
      const result = await keywayProcess(
        [
          "connections",
          "create",
          "--target",
          "demo-api",
          "--method",
          "api-key",
          "--name",
          "Demo",
          "--json",
        ],
        {
          env: { KEYWAY_URL: controlPlane.url, KEYWAY_TOKEN: admin, HOME: dir },
          stdin: `${API_KEY}\n`,
          onStart: async (pid) => {
            // The CLI is running and waiting for standard input: its command line (what `ps` shows
            // every user) holds no secret.
            const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8");
            expect(cmdline).toContain("connections");
            expect(cmdline).not.toContain(API_KEY);
            expect(cmdline).not.toContain(admin);
          },
        },
      );
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      const connection = JSON.parse(result.stdout);
      expect(connection).toMatchObject({
        targetKey: "demo-api",
        methodId: "api-key",
        status: "active",
        secretFields: ["apiKey"],
      });
      connectionId = connection.id;
      expect(result.stdout).not.toContain(API_KEY);
    },
    CHILD_TIMEOUT,
  );

  it("connections list, show, test, rotate and delete", async () => {
    const table = await keyway(admin, ["connections", "list", "--target", "demo-api"]);
    expect(table.stdout).toMatch(
      new RegExp(`${connectionId}\\s+Demo\\s+demo-api\\s+api-key\\s+active`),
    );
    expect((await keywayJson(admin, ["connections", "list", "--status", "error"])).items).toEqual(
      [],
    );
    const shown = await keyway(admin, ["connections", "show", connectionId]);
    expect(shown.stdout).toMatch(/^id:\s+conn_/);
    expect(shown.stdout).toMatch(/credential:\s+version 1/);

    const test = await keyway(admin, ["connections", "test", connectionId, "--json"]);
    const tested = JSON.parse(test.stdout);
    expect(test.code).toBe(tested.ok === false ? 1 : 0);
    expect(typeof tested.message).toBe("string");

    const rotated = await keywayJson(admin, ["connections", "rotate", connectionId], ROTATED_KEY);
    expect(rotated).toMatchObject({ id: connectionId, credentialVersion: 2 });
    const empty = await keyway(admin, ["connections", "rotate", connectionId], "\n");
    expect(empty).toMatchObject({ code: 2 });
    expect(empty.stderr).toMatch(/^error: usage: apiKey is empty/);

    const extra = await keywayJson(
      admin,
      ["connections", "create", "--target", "demo-api", "--method", "api-key", "--name", "Spare"],
      API_KEY,
    );
    const deleted = await keyway(admin, ["connections", "delete", extra.id]);
    expect(deleted).toMatchObject({ code: 0, stdout: `deleted ${extra.id}\n` });
    expect(await keywayJson(admin, ["connections", "show", extra.id])).toMatchObject({
      status: "revoked",
    });

    const noMethod = await keyway(admin, [
      "connections",
      "create",
      "--target",
      "demo-api",
      "--method",
      "password",
      "--name",
      "x",
    ]);
    expect(noMethod.code).toBe(2);
    expect(noMethod.stderr).toContain('demo-api has no connection method "password"');
  });

  it(
    "on a terminal, the secret is asked with a prompt that does not echo it",
    async () => {
      // `script` gives the CLI a pseudo-terminal; what the terminal shows comes back on its stdout.
      const command = [
        process.execPath,
        "--import",
        "tsx",
        mainPath,
        "connections",
        "rotate",
        connectionId,
      ]
        .map((word) => `'${word}'`)
        .join(" ");
      const child = spawn("script", ["-qfec", command, "/dev/null"], {
        cwd: repo,
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          KEYWAY_URL: controlPlane.url,
          KEYWAY_TOKEN: admin,
          HOME: dir,
        },
        stdio: ["pipe", "pipe", "pipe"],
      });
      let screen = "";
      const prompted = new Promise<void>((resolve) => {
        child.stdout.on("data", (chunk: Buffer) => {
          screen += chunk.toString("utf8");
          if (screen.includes("apiKey: ")) resolve();
        });
      });
      const closed = new Promise<number>((resolve) =>
        child.once("close", (code) => resolve(code ?? -1)),
      );
      // Typed only once the prompt is up: before that the terminal is still in echo mode.
      await prompted;
      child.stdin.write(`${ROTATED_KEY}\r`);
      expect(await closed).toBe(0);
      allOutput.push(screen);
      expect(screen).toMatch(/credential:\s+version \d+/);
      expect(screen).not.toContain(ROTATED_KEY);
      child.stdin.destroy();
    },
    CHILD_TIMEOUT,
  );

  it("profiles, versions from a bindings file, plan show and plan diff", async () => {
    const profile = await keywayJson(admin, ["profiles", "create", "agent", "--description", "CI"]);
    profileId = profile.id;
    expect(await keywayJson(admin, ["profiles", "show", "agent"])).toMatchObject({
      id: profileId,
      latestVersion: 0,
    });
    expect((await keyway(admin, ["profiles", "list"])).stdout).toMatch(
      new RegExp(`${profileId}\\s+agent\\s+0`),
    );

    await writeFile(
      join(dir, "v1.json"),
      JSON.stringify({ bindings: [{ connectionId, kind: "connector", config: {} }] }),
    );
    const v1 = await keywayJson(admin, ["versions", "create", "agent", "--file", "v1.json"]);
    expect(v1).toMatchObject({ version: 1, bindings: [{ connectionId, kind: "connector" }] });
    // Just the array of bindings, and an egress policy the second time.
    await writeFile(
      join(dir, "v2.json"),
      JSON.stringify({
        bindings: [{ connectionId, kind: "connector", config: {} }],
        egressPolicy: { default: "deny", allowHosts: ["registry.npmjs.org"] },
      }),
    );
    expect(
      (await keywayJson(admin, ["versions", "create", profileId, "--file", "v2.json"])).version,
    ).toBe(2);
    const versions = await keyway(admin, ["versions", "list", "agent"]);
    expect(versions.stdout).toMatch(/^version\s+bindings\s+plan digest\s+egress/);
    expect(versions.stdout).toContain("default deny, allow registry.npmjs.org");
    expect((await keywayJson(admin, ["versions", "show", "agent", "1"])).id).toBe(v1.id);

    const plan = await keywayJson(admin, ["plan", "show", "agent", "1"]);
    expect(plan.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(plan.plan.routes.length).toBeGreaterThan(0);
    const planText = await keyway(admin, ["plan", "show", "agent", "1"]);
    expect(planText.stdout).toContain(`${upstream.url}`);

    const diff = await keywayJson(admin, ["plan", "diff", "agent", "1", "2"]);
    expect(diff).toMatchObject({ from: { version: 1 }, to: { version: 2 } });
    expect(diff.diff.egressPolicyChanged).toBe(true);
    expect((await keyway(admin, ["plan", "diff", "agent", "1", "2"])).stdout).toContain(
      "egress policy changed",
    );

    const bad = await keyway(admin, ["versions", "create", "agent", "--file", "nope.json"]);
    expect(bad).toMatchObject({ code: 2 });
    expect(bad.stderr).toMatch(/^error: usage: cannot read nope.json: ENOENT/);
    const notAVersion = await keyway(admin, ["versions", "show", "agent", "first"]);
    expect(notAVersion.code).toBe(2);
    const unknownProfile = await keyway(admin, ["profiles", "show", "nobody"]);
    expect(unknownProfile).toMatchObject({
      code: 1,
      stderr: 'error: not_found: no sandbox profile named "nobody"\n',
    });
  });

  it("sessions create, list, show and revoke", async () => {
    const started = await keywayJson(admin, [
      "sessions",
      "create",
      "--profile",
      "agent",
      "--version",
      "1",
    ]);
    expect(started).toMatchObject({ profileId, profileVersion: 1 });
    expect(started.token).toBeTruthy();
    const listed = await keyway(admin, ["sessions", "list", "--profile", "agent"]);
    expect(listed.stdout).toMatch(new RegExp(`${started.id}\\s+${profileId}\\s+1\\s+active`));
    expect(await keywayJson(admin, ["sessions", "show", started.id])).toMatchObject({
      status: "active",
    });
    expect((await keyway(admin, ["sessions", "revoke", started.id])).code).toBe(0);
    expect(await keywayJson(admin, ["sessions", "show", started.id])).toMatchObject({
      status: "revoked",
    });
    const human = await keyway(admin, ["sessions", "create", "--profile", profileId]);
    expect(human.stdout).toMatch(/profile:\s+prof_\S+ v2/);
  });

  it("sandbox env and sandbox run use the stored login; errors carry the API's code", async () => {
    const home = await mkdtemp(join(dir, "sandbox-login-"));
    const login = await keywayWithEnv(
      { HOME: home, KEYWAY_URL: controlPlane.url },
      ["login"],
      `${admin}\n`,
    );
    expect(login.code, login.stderr).toBe(0);
    // From here on no KEYWAY_URL or KEYWAY_TOKEN: only the file `keyway login` wrote.
    const env = { HOME: home };
    const sandboxHome = join(home, "sandbox-home");
    const workspace = join(home, "workspace");
    const printed = await keywayWithEnv(env, [
      "sandbox",
      "env",
      "--profile",
      "agent",
      "--format",
      "json",
      "--home",
      sandboxHome,
      "--workspace",
      workspace,
    ]);
    expect(printed.code, printed.stderr).toBe(0);
    const variables = JSON.parse(printed.stdout) as Record<string, string>;
    expect(variables.HOME).toBe(sandboxHome);
    expect(variables.HTTPS_PROXY).toMatch(/^http:\/\/[^@]+@/);
    expect(variables.KEYWAY_TOKEN).toBeUndefined();
    expect(printed.stdout).not.toContain(admin);
    const sessionId = /session (sess_\S+) is live/.exec(printed.stderr)?.[1];
    expect(await keywayJson(admin, ["sessions", "show", sessionId ?? "?"])).toMatchObject({
      profileId,
      status: "active",
    });
    expect((await keyway(admin, ["sessions", "revoke", sessionId ?? "?"])).code).toBe(0);

    const ran = await keywayWithEnv(env, ["sandbox", "run", "--profile", "agent", "--", "true"]);
    expect(ran).toMatchObject({ code: 0, stderr: "" });

    const unknown = await keywayWithEnv(env, ["sandbox", "env", "--profile", "nobody"]);
    expect(unknown).toMatchObject({
      code: 1,
      stderr: 'error: not_found: no sandbox profile named "nobody"\n',
    });
    const tooOld = await keywayWithEnv(env, [
      "sandbox",
      "mcp-tools",
      "--profile",
      "agent",
      "--version",
      "99",
    ]);
    expect(tooOld.code).toBe(1);
    expect(tooOld.stderr).toMatch(/^error: [a-z_]+: [^\n]+\n$/);
    const noCommand = await keywayWithEnv(env, ["sandbox", "run", "--profile", "agent"]);
    expect(noCommand).toMatchObject({ code: 2 });
    expect(noCommand.stderr).toMatch(/^error: usage: missing <command\.\.\.>\n/);
  });

  it("subscriptions create (secret once), list, show, rotate and delete", async () => {
    const created = await keywayJson(admin, [
      "subscriptions",
      "create",
      "--url",
      `${upstream.url}/hooks`,
      "--event",
      "http-api.*",
    ]);
    expect(created.secret).toMatch(/^whsec_/);
    expect(created.eventTypes).toEqual(["http-api.*"]);
    const shown = await keywayJson(admin, ["subscriptions", "show", created.id]);
    expect(shown.secret).toBeUndefined();
    expect((await keyway(admin, ["subscriptions", "list"])).stdout).toContain(created.id);
    const rotated = await keywayJson(admin, ["subscriptions", "rotate", created.id]);
    expect(rotated.secret).toMatch(/^whsec_/);
    expect(rotated.secret).not.toBe(created.secret);
    expect(rotated.previousSecretExpiresAt).not.toBeNull();

    const spare = await keywayJson(admin, [
      "subscriptions",
      "create",
      "--url",
      `${upstream.url}/spare`,
      "--event",
      "*",
    ]);
    expect((await keyway(admin, ["subscriptions", "delete", spare.id])).code).toBe(0);
    expect((await keyway(admin, ["subscriptions", "show", spare.id])).code).toBe(1);
    const noEvent = await keyway(admin, ["subscriptions", "create", "--url", upstream.url]);
    expect(noEvent).toMatchObject({ code: 2 });
  });

  it("events list (filters), show and replay; operators list every organization's", async () => {
    const provider = await new Promise<Result>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [
          join(repo, "scripts/demo-provider.mjs"),
          "--secret",
          WEBHOOK_SECRET,
          "--type",
          "invoice.paid",
          `${controlPlane.url}/p/integration/webhooks/demo-api`,
        ],
        { cwd: repo, stdio: ["ignore", "pipe", "pipe"] },
      );
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => {
        stdout += c;
      });
      child.stderr.on("data", (c: Buffer) => {
        stderr += c;
      });
      child.once("error", reject);
      child.once("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
    expect(provider.code, provider.stderr).toBe(0);
    const eventId: string = JSON.parse(provider.stdout.slice(provider.stdout.indexOf("{"))).id;

    const page = await keywayJson(admin, [
      "events",
      "list",
      "--target",
      "demo-api",
      "--limit",
      "5",
    ]);
    expect(page.items.map((e: { id: string }) => e.id)).toEqual([eventId]);
    expect(page.items[0].eventType).toBe("http-api.invoice.paid");
    const none = await keywayJson(admin, ["events", "list", "--type", "github.*"]);
    expect(none.items).toEqual([]);
    expect((await keyway(admin, ["events", "list"])).stdout).toMatch(
      new RegExp(`${eventId}\\s+\\S+ \\S+\\s+demo-api\\s+http-api.invoice.paid`),
    );

    const detail = await keywayJson(admin, ["events", "show", eventId]);
    expect(detail.payload).toMatchObject({ data: { id: "in_demo_1" } });
    const replay = await keywayJson(admin, ["events", "replay", eventId]);
    expect(replay.eventId).toBe(eventId);

    const all = await keywayJson(operatorToken, [
      "events",
      "list",
      "--all-organizations",
      "--organization",
      organizationId,
    ]);
    expect(all.items[0]).toMatchObject({ id: eventId, organizationId });
    expect(
      (await keywayJson(operatorToken, ["events", "show", eventId, "--all-organizations"]))
        .organizationId,
    ).toBe(organizationId);
    const notOperator = await keyway(admin, ["events", "list", "--organization", organizationId]);
    expect(notOperator.code).toBe(2);
  });

  it("audit list and audit verify through the API", async () => {
    const page = await keywayJson(admin, ["audit", "list", "--limit", "3"]);
    expect(page.items).toHaveLength(3);
    expect(page.nextBefore).toEqual(expect.any(Number));
    const more = await keyway(admin, ["audit", "list", "--limit", "3"]);
    expect(more.stdout).toContain(`more: keyway audit list --before ${page.nextBefore}`);
    // An operator lists one organization's entries, the same its admin sees.
    const operatorView = await keywayJson(operatorToken, [
      "audit",
      "list",
      "--organization",
      organizationId,
      "--limit",
      "3",
    ]);
    // Compared by id: an entry may be sealed between the two reads (chainSeq and hash filled).
    const ids = (items: { id: string }[]) => items.map((entry) => entry.id);
    expect(ids(operatorView.items)).toEqual(ids(page.items));
    const verified = await keyway(operatorToken, ["audit", "verify"]);
    expect(verified.code).toBe(0);
    expect(verified.stdout).toMatch(/^audit chain ok: \d+ entries checked\n$/);
    expect(await keywayJson(admin, ["audit", "verify"])).toMatchObject({
      scope: "organization",
      ok: true,
    });
  });

  it(
    "a child process exits 1 with one line for an API error, 3 for an unreachable API, 2 for usage",
    async () => {
      const env = { KEYWAY_URL: controlPlane.url, KEYWAY_TOKEN: admin, HOME: dir };
      const missing = await keywayProcess(["sessions", "show", "sess_nope"], { env });
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/^error: not_found: [^\n]+\n$/);
      const port = await getFreePort();
      const unreachable = await keywayProcess(["profiles", "list"], {
        env: { ...env, KEYWAY_URL: `http://127.0.0.1:${port}` },
      });
      expect(unreachable.code).toBe(3);
      expect(unreachable.stderr).toMatch(
        /^error: unreachable: cannot reach http:\/\/127\.0\.0\.1:\d+ /,
      );
      const usage = await keywayProcess(["profiles", "show"], { env });
      expect(usage.code).toBe(2);
      expect(usage.stderr).toBe(
        "error: usage: missing <profile>\nusage: keyway profiles show <profile> [--json]\n",
      );
    },
    CHILD_TIMEOUT,
  );

  it("never printed a secret it was given", () => {
    const printed = allOutput.join("\n");
    expect(printed).not.toContain(API_KEY);
    expect(printed).not.toContain(ROTATED_KEY);
    expect(printed).not.toContain(WEBHOOK_SECRET);
    expect(printed).not.toContain(operatorToken);
  });
});
