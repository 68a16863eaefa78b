import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { getFreePort } from "@keyway/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundlePath } from "../../scripts/build";

/**
 * The README's promise, as a test: `pnpm start` on a fresh folder writes its development state,
 * brings the platform up on the embedded PostgreSQL, the walkthrough script works against it,
 * and a second start reuses the same state.
 */
const repo = fileURLToPath(new URL("../..", import.meta.url));
const tsx = join(repo, "node_modules", ".bin", "tsx");
const apiBundle = bundlePath("control-plane-api");
const gatewayBundle = bundlePath("data-plane-gateway");

let dir: string;
let env: NodeJS.ProcessEnv;
let apiUrl: string;
let gatewayPort: number;
let adminPort: number;

function start(): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(tsx, [join(repo, "scripts", "start.ts")], {
    cwd: dir,
    env,
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group, as in a terminal, so a test can press Ctrl+C (`interrupt`).
    detached: true,
  });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`start timed out:\n${output}`)), 90_000);
    const poll = setInterval(() => {
      if (output.includes("Keyway is running")) {
        clearInterval(poll);
        clearTimeout(timer);
        resolve({ child, output: () => output });
      }
    }, 100);
    child.once("exit", (code) => {
      clearInterval(poll);
      clearTimeout(timer);
      reject(new Error(`start exited with ${code}:\n${output}`));
    });
  });
}

function servicePids(output: string): { api: number; gateway: number } {
  const match = /API pid (\d+), gateway pid (\d+)/.exec(output);
  if (!match) throw new Error(`no service pids in:\n${output}`);
  return { api: Number(match[1]), gateway: Number(match[2]) };
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

/** Ctrl+C in a terminal: SIGINT to every process of the group, PostgreSQL's included. */
function interrupt(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.once("exit", (code) => resolve(code));
    if (child.pid !== undefined) process.kill(-child.pid, "SIGINT");
  });
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

function walkthrough(): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      "bash",
      [join(repo, "scripts", "walkthrough.sh")],
      { cwd: dir, env: { ...env, KEYWAY: apiUrl, KEYWAY_STATE: join(dir, ".keyway") } },
      (error, stdout, stderr) => resolve({ code: error ? 1 : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "keyway-start-"));
  // PostgreSQL runs as the `postgres` user when tests run as root; it must traverse this folder.
  await chmod(dir, 0o755);
  const [apiPort, pgPort] = await Promise.all([getFreePort(), getFreePort()]);
  [gatewayPort, adminPort] = await Promise.all([getFreePort(), getFreePort()]);
  apiUrl = `http://127.0.0.1:${apiPort}`;
  env = {
    ...process.env,
    KEYWAY_API__PORT: String(apiPort),
    KEYWAY_API__PUBLIC_URL: apiUrl,
    KEYWAY_GATEWAY__PORT: String(gatewayPort),
    KEYWAY_GATEWAY__ADMIN_PORT: String(adminPort),
    KEYWAY_DATABASE__EMBEDDED__PORT: String(pgPort),
  };
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("pnpm start and the README walkthrough", () => {
  it("starts on a fresh folder, serves the walkthrough, and reuses its state on the next start", async () => {
    let services = { api: 0, gateway: 0 };
    const first = await start();
    try {
      expect(first.output()).toContain("first run");
      expect(first.output()).toContain(`egress gateway      http://127.0.0.1:${gatewayPort}`);
      expect(first.output()).toContain(`gateway admin       http://127.0.0.1:${adminPort}`);
      const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
      expect(ready.status).toBe(200);
      // API and gateway are separate plain-node processes running their bundles, as deployed.
      services = servicePids(first.output());
      expect(await commandLine(services.api)).toBe(`${process.execPath} ${apiBundle}`);
      expect(await commandLine(services.gateway)).toBe(`${process.execPath} ${gatewayBundle}`);
      const result = await walkthrough();
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      expect(result.stdout).toContain("api.openai.com /v1 -> bearer");
      expect(result.stdout).toMatch(/session sess_\w+ proxy http:\/\/127\.0\.0\.1:\d+/);
      // The request through the gateway: the demo API got the stored key, the sandbox did not.
      expect(result.stdout).toContain('sandbox got: {"message":"hello from the demo API"');
      expect(result.stdout).toContain(
        "the demo API saw: demo API received GET /v1/hello with authorization: Bearer demo-key-walkthrough-not-secret",
      );
      expect(result.stdout).not.toMatch(/sandbox got: .*demo-key/);
      expect(result.stdout.trim().endsWith("true")).toBe(true);
      // Ctrl+C stops everything cleanly, even with the database shutting down at the same time.
      expect(await interrupt(first.child)).toBe(0);
      expect(first.output()).not.toMatch(/Error:|Uncaught|error while stopping/);
    } finally {
      await stop(first.child);
    }
    // Stopping `pnpm start` stops the services it ran.
    expect(isRunning(services.api)).toBe(false);
    expect(isRunning(services.gateway)).toBe(false);

    const operatorToken = (await readFile(join(dir, ".keyway", "operator-token"), "utf8")).trim();
    const second = await start();
    try {
      expect(second.output()).not.toContain("first run");
      const orgs = await fetch(`${apiUrl}/v1/operator/organizations`, {
        headers: { authorization: `Bearer ${operatorToken}` },
      });
      expect(orgs.status).toBe(200);
      const body = (await orgs.json()) as { items: { name: string }[] };
      expect(body.items.map((o) => o.name)).toEqual(["Acme"]);

      // A service that dies takes the platform down loudly instead of leaving half of it up.
      const pids = servicePids(second.output());
      const exited = new Promise<number | null>((resolve) => second.child.once("exit", resolve));
      process.kill(pids.gateway, "SIGKILL");
      expect(await exited).toBe(1);
      expect(second.output()).toContain("data-plane-gateway exited (SIGKILL); stopping Keyway");
      expect(isRunning(pids.api)).toBe(false);
    } finally {
      await stop(second.child);
    }
  });
});
