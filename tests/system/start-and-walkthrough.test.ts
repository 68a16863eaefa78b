import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundlePath, SERVICE_NODE_FLAGS, type Service } from "../../scripts/build";
import { type NewcomerMachine, newcomerMachine, type Watched } from "./support/newcomer-machine";

/**
 * The README's promises, as a test, on a newcomer's machine (`support/newcomer-machine.ts`: a
 * fresh checkout, no pnpm on PATH, a private loopback so the README's fixed ports are free):
 * the quick start's `npx --yes pnpm@… start` brings Keyway up on a pseudo-terminal, the README's
 * walkthrough blocks run exactly as written (extracted from README.md, so the two cannot drift),
 * and `pnpm start`'s behaviour around failures: a second start, crashes and restarts, Ctrl+C,
 * the port-override example, a service that keeps crashing, a taken port.
 *
 * The quick start runs through npx and pnpm because what they print around Ctrl+C
 * (`ELIFECYCLE`) is part of what a newcomer sees. npx fetches pnpm once before the namespace is
 * entered (the registry is reachable here and in CI) and takes it from its cache inside. The
 * other starts run package.json's `start` command directly, as pnpm does, which is quicker.
 */
const repo = fileURLToPath(new URL("../..", import.meta.url));
const readme = readFileSync(join(repo, "README.md"), "utf8");
const packageJson = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")) as {
  packageManager: string;
  scripts: { start: string };
};
const pnpmVersion = packageJson.packageManager.replace(/^pnpm@/, "");
const quickStart = `npx --yes pnpm@${pnpmVersion} start`;
const apiBundle = bundlePath("control-plane-api");
const workerBundle = bundlePath("control-plane-worker");
const gatewayBundle = bundlePath("data-plane-gateway");

/** The ```sh blocks of a README section (`## name`), in order. */
function shellBlocks(section: string): string[] {
  const start = readme.indexOf(`\n## ${section}\n`);
  if (start === -1) throw new Error(`README.md has no "## ${section}" section`);
  const end = readme.indexOf("\n## ", start + 1);
  const text = readme.slice(start, end === -1 ? undefined : end);
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1] ?? "");
}

/**
 * The banner's last line. The banner is one write, but a pseudo-terminal or pipe may hand it over
 * in several chunks: waiting for its first line and then reading the pids raced the rest of it.
 */
const BANNER_END = /Press Ctrl\+C to stop\./;

function pidsIn(output: string): {
  api: number;
  worker: number;
  gateway: number;
  database: number;
} {
  const match = /API pid (\d+), worker pid (\d+), gateway pid (\d+), PostgreSQL pid (\d+)/.exec(
    output,
  );
  if (!match) throw new Error(`no pids in the banner:\n${output}`);
  return {
    api: Number(match[1]),
    worker: Number(match[2]),
    gateway: Number(match[3]),
    database: Number(match[4]),
  };
}

async function commandLine(pid: number): Promise<string> {
  const raw = await readFile(`/proc/${pid}/cmdline`, "utf8");
  return raw.split("\0").filter(Boolean).join(" ");
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls `check` (bounded) until it holds; fails saying what it waited for. */
async function eventually(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** Lines a person reads, without the services' JSON log lines and the terminal's `^C` echo. */
function announcements(output: string): string[] {
  return output
    .replaceAll("^C", "\n")
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("{"));
}

let machine: NewcomerMachine;
let keyway: Watched;
let operatorToken: string;

beforeAll(async () => {
  machine = await newcomerMachine();
  // Fetches pnpm into npx's cache while the registry can be reached (outside the namespace).
  const fetched = await new Promise<string>((resolve, reject) => {
    execFile(
      "npx",
      ["--yes", `pnpm@${pnpmVersion}`, "--version"],
      { env: { ...machine.env, npm_config_prefer_offline: undefined } },
      (error, stdout) => (error ? reject(error) : resolve(stdout.trim())),
    );
  });
  expect(fetched).toBe(pnpmVersion);
  const noPnpm = await machine.run("sh", ["-c", "command -v pnpm || echo none"]);
  expect(noPnpm.stdout.trim()).toBe("none");
}, 180_000);

afterAll(async () => {
  await machine?.close();
});

/** A service's command line as `pnpm start` runs it: plain node, the service's flags, its bundle. */
const deployed = (service: Service, bundle: string) =>
  [process.execPath, ...SERVICE_NODE_FLAGS[service], bundle].join(" ");

describe("pnpm start and the README, on a machine without pnpm", () => {
  it("the quick start's command brings Keyway up in a fresh checkout", async () => {
    const [quickStartBlock] = shellBlocks("Quick start");
    expect(quickStartBlock).toContain(`npx --yes pnpm@${pnpmVersion} install && ${quickStart}`);

    keyway = machine.start(quickStart, { terminal: true });
    await keyway.waitFor(BANNER_END, "the start banner", 150_000);
    expect(keyway.output()).toContain("first run");
    // API, worker and gateway are separate plain-node processes running their bundles, as deployed
    // (with each service's node flags: the gateway's young-generation cap).
    const pids = pidsIn(keyway.output());
    expect(await commandLine(pids.api)).toBe(deployed("control-plane-api", apiBundle));
    expect(await commandLine(pids.worker)).toBe(deployed("control-plane-worker", workerBundle));
    expect(await commandLine(pids.gateway)).toBe(deployed("data-plane-gateway", gatewayBundle));
    expect(await commandLine(pids.gateway)).toContain(" --max-semi-space-size=");
    expect(await commandLine(pids.database)).toContain("postgres");
    operatorToken = (await readFile(join(machine.dir, ".keyway", "operator-token"), "utf8")).trim();
  }, 180_000);

  it("the README walkthrough runs exactly as written", async () => {
    const blocks = shellBlocks("Walkthrough");
    expect(blocks.length).toBeGreaterThan(0);
    const walkthrough = await machine.run("bash", ["-c", blocks.join("\n")]);
    expect(walkthrough.stderr).toBe("");
    expect(walkthrough.code).toBe(0);
    const out = walkthrough.stdout;
    // `keyway targets catalog`: the enabled targets with their methods and secret fields.
    expect(out).toMatch(/^openai\s.*api-key: apiKey/m);
    // The request through the gateway: the demo API got the stored key, the sandbox did not.
    // Twice: curl with the session's proxy, then curl under `keyway sandbox run`.
    expect(
      out.split('{"message":"hello from the demo API","authorized":true}').length - 1,
    ).toBeGreaterThanOrEqual(2);
    expect(out).toContain(
      "demo API received GET /v1/hello with authorization: Bearer demo-key-123",
    );
    expect(out).not.toMatch(/"message":"hello from the demo API"[^\n]*demo-key-123/);
    // The webhook: accepted at the front door, listed, delivered and verified by the subscriber
    // with the reference Standard Webhooks library.
    expect(out).toMatch(/^202 \{"id":"whe_[0-9A-Z]+","duplicate":false\}$/m);
    // `keyway events list`: id, received, target, type.
    expect(out).toMatch(/^whe_[0-9A-Z]+\s+\S+ \S+\s+demo-api\s+http-api\.invoice\.paid\s/m);
    expect(out).toMatch(/demo subscriber verified http-api\.invoice\.paid \(webhook-id whe_/);
    expect(out).toMatch(/\[\{"id":"whe_[0-9A-Z]+","type":"http-api\.invoice\.paid"\}\]/);
    // The OAuth2 step: the authorization server's line, then the connection's status.
    expect(out).toContain("demo authorization server listening on http://127.0.0.1:8092");
    expect(out).toMatch(/^active$/m);
    // The verification is the last flat JSON object naming checkedEntries.
    const verified = out.match(/\{[^{}]*"checkedEntries"[^{}]*\}/g)?.at(-1);
    expect(JSON.parse(verified ?? "{}")).toMatchObject({
      ok: true,
      scope: "deployment",
      checkedEntries: expect.any(Number),
    });
    // Each `keyway` in the walkthrough is a node process compiling the CLI with tsx (~0.5 s of
    // CPU, seconds on a busy 2-core machine).
  }, 240_000);

  it("a second start in the same folder says Keyway is already running there", async () => {
    const second = machine.start(packageJson.scripts.start);
    expect(await second.exited).toBe(1);
    const match = /^Keyway is already running in (.+) \(pid (\d+)\)$/m.exec(second.output());
    expect(match?.[1]).toBe(machine.dir);
    expect(await commandLine(Number(match?.[2]))).toContain("scripts/start.ts");
    expect(second.output()).not.toContain("postmaster.pid");
    // The running one is untouched.
    expect(await machine.status("http://127.0.0.1:8080/healthz")).toBe(200);
  });

  it("restarts a crashed API, worker, gateway or PostgreSQL and announces it", async () => {
    const pids = pidsIn(keyway.output());

    process.kill(pids.api, "SIGKILL");
    await keyway.waitFor(
      /control-plane-api exited \(signal SIGKILL\); restarting it in 0\.5 s/,
      "the API's restart announcement",
    );
    const api = await keyway.waitFor(/control-plane-api is running again \(pid (\d+)\)/, "the API");
    expect(await commandLine(Number(api[1]))).toBe(deployed("control-plane-api", apiBundle));
    expect(await machine.status("http://127.0.0.1:8080/healthz")).toBe(200);

    process.kill(pids.worker, "SIGKILL");
    await keyway.waitFor(
      /control-plane-worker exited \(signal SIGKILL\); restarting it in 0\.5 s/,
      "the worker's restart announcement",
    );
    const worker = await keyway.waitFor(
      /control-plane-worker is running again \(pid (\d+)\)/,
      "the worker",
    );
    expect(await commandLine(Number(worker[1]))).toBe(
      deployed("control-plane-worker", workerBundle),
    );

    process.kill(pids.gateway, "SIGKILL");
    await keyway.waitFor(
      /data-plane-gateway exited \(signal SIGKILL\); restarting it in 0\.5 s/,
      "the gateway's restart announcement",
    );
    await keyway.waitFor(/data-plane-gateway is running again \(pid \d+\)/, "the gateway");
    expect(await machine.status("http://127.0.0.1:8082/readyz")).toBe(200);

    process.kill(pids.database, "SIGKILL");
    await keyway.waitFor(
      /PostgreSQL exited \(signal SIGKILL\); restarting it in 0\.5 s/,
      "PostgreSQL's restart announcement",
    );
    await keyway.waitFor(/PostgreSQL is running again \(pid \d+\)/, "PostgreSQL");
    // The API's connection pool reconnects on its own: the walkthrough's organization is there.
    await eventually("the API to read from the restarted database", async () => {
      const status = await machine.status("http://127.0.0.1:8080/v1/operator/organizations", {
        authorization: `Bearer ${operatorToken}`,
      });
      return status === 200;
    });
  }, 120_000);

  it("Ctrl+C stops everything and says so in one line, without ELIFECYCLE, even pressed twice", async () => {
    const output = keyway.output();
    const running = [
      Number(/control-plane-api is running again \(pid (\d+)\)/.exec(output)?.[1]),
      Number(/control-plane-worker is running again \(pid (\d+)\)/.exec(output)?.[1]),
      Number(/data-plane-gateway is running again \(pid (\d+)\)/.exec(output)?.[1]),
      Number(/PostgreSQL is running again \(pid (\d+)\)/.exec(output)?.[1]),
    ];
    const before = output.length;
    keyway.press("\x03");
    // Ctrl+C again while Keyway is stopping (the gateway, stopped first, is gone).
    await eventually("the gateway to stop", () => !isRunning(running[1] ?? 0));
    if (!keyway.output().includes("Keyway stopped.")) keyway.press("\x03");
    await keyway.exited;

    const afterCtrlC = keyway.output().slice(before);
    expect(afterCtrlC).not.toContain("ELIFECYCLE");
    expect(afterCtrlC).not.toMatch(/Error|Uncaught|error while stopping/);
    expect(announcements(afterCtrlC)).toEqual(["Keyway stopped."]);
    for (const pid of running) expect(isRunning(pid)).toBe(false);
    expect(existsSync(join(machine.dir, ".keyway", "start.pid"))).toBe(false);
  }, 60_000);

  let moved: Watched;

  it("KEYWAY_API__PORT=9000 moves the API, and the gateway follows it", async () => {
    moved = machine.start(packageJson.scripts.start, { env: { KEYWAY_API__PORT: "9000" } });
    await moved.waitFor(BANNER_END, "the start banner");
    expect(moved.output()).not.toContain("first run");
    expect(moved.output()).toContain("control plane API   http://127.0.0.1:9000");
    expect(await machine.status("http://127.0.0.1:8080/healthz")).toBe(0);
    // Ready means the gateway's event feed from the control plane is connected: on :9000.
    expect(await machine.status("http://127.0.0.1:8082/readyz")).toBe(200);
    const orgs = await machine.run("curl", [
      "-s",
      "-H",
      `authorization: Bearer ${operatorToken}`,
      "http://127.0.0.1:9000/v1/operator/organizations",
    ]);
    expect(orgs.stdout).toContain('"name":"Acme"');
  }, 150_000);

  let squatter: Watched;

  it("gives up on a service that keeps crashing, even while its port answers health checks", async () => {
    // Another program takes the API's port as soon as the API is gone, and answers 200 to
    // everything: the restarted API cannot bind, and Keyway must not take the answers for it.
    squatter = machine.start(
      `exec node -e 'const s = require("http").createServer((q, r) => r.end("{}"));
        s.on("error", () => setTimeout(() => { s.close(); s.listen(9000, "127.0.0.1"); }, 10));
        s.on("listening", () => console.log("squatting on 9000"));
        s.listen(9000, "127.0.0.1");'`,
    );
    const pids = pidsIn(moved.output());
    process.kill(pids.api, "SIGKILL");
    await squatter.waitFor(/squatting on 9000/, "the squatter to take the port");

    expect(await moved.exited).toBe(1);
    const output = moved.output();
    expect(output).toContain("control-plane-api: cannot start: port 9000 (api.port) is in use");
    expect(output).toContain(
      "control-plane-api crashed 5 times within 60 s (last: exited (exit code 1) before it was ready); giving up",
    );
    expect(output).not.toContain("control-plane-api is running again");
    expect(announcements(output).at(-1)).toBe("Keyway stopped.");
    for (const pid of [pids.worker, pids.gateway, pids.database]) {
      expect(isRunning(pid)).toBe(false);
    }
    expect(await machine.status("http://127.0.0.1:9000/healthz")).toBe(200);
  }, 120_000);

  it("names a taken port and its setting, and starts nothing", async () => {
    const refused = machine.start(packageJson.scripts.start, {
      env: { KEYWAY_API__PORT: "9000" },
    });
    expect(await refused.exited).toBe(1);
    expect(announcements(refused.output())).toEqual([
      "Keyway did not start: port 9000 (api.port) is in use: stop what is using it, or choose another port with KEYWAY_API__PORT",
    ]);
    expect(existsSync(join(machine.dir, ".keyway", "postgres", "postmaster.pid"))).toBe(false);
    await squatter.kill();
  });
});
