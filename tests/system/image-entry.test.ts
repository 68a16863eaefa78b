import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { writeDevelopmentConfig } from "@keyway/config";
import { createTestDatabase, getFreePort, type TestDatabase } from "@keyway/test-harness";
import { createCertificateAuthority } from "@keyway/x509";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * The container image's command line (`scripts/entry.mjs`, the Dockerfile's ENTRYPOINT): each
 * service name runs its bundle with plain `node`. The bundles are built by the system project's
 * global setup, as `pnpm build` writes them in the image.
 */
const repo = fileURLToPath(new URL("../..", import.meta.url));
const entry = join(repo, "scripts", "entry.mjs");

let dir: string;
let database: TestDatabase;
let env: NodeJS.ProcessEnv;

function run(
  args: string[],
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const options = { env: { ...env, ...extraEnv } };
    execFile(process.execPath, [entry, ...args], options, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "keyway-entry-"));
  const files = await writeDevelopmentConfig({ dir });
  const ca = await createCertificateAuthority({ commonName: "Keyway image entry test CA" });
  await writeFile(files.gatewayCaCertPath, ca.certPem);
  await writeFile(files.gatewayCaKeyPath, ca.keyPem, { mode: 0o600 });
  database = await createTestDatabase("image_entry");
  env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: dir,
    KEYWAY_CONFIG: files.configPath,
    KEYWAY_DATABASE__URL: database.url,
    KEYWAY_API__PORT: String(await getFreePort()),
    KEYWAY_WORKER__METRICS_PORT: String(await getFreePort()),
  };
});

afterAll(async () => {
  await database.drop();
  await rm(dir, { recursive: true, force: true });
});

describe("image entry (scripts/entry.mjs)", () => {
  it("names the services when none or an unknown one is given", async () => {
    for (const args of [[], ["toString"], ["control-plane-scheduler"]]) {
      const result = await run(args);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(
        "usage: <control-plane-api|control-plane-worker|data-plane-gateway|keyway>",
      );
    }
  });

  it("runs the control plane from its bundle and stops it on SIGTERM", async () => {
    const api: ChildProcess = spawn(process.execPath, [entry, "control-plane-api"], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    api.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    api.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => api.once("exit", resolve));
    try {
      let health: Response | undefined;
      for (let i = 0; i < 300 && health === undefined; i++) {
        if (api.exitCode !== null) throw new Error(`the API exited:\n${output}`);
        health = await fetch(`http://127.0.0.1:${env.KEYWAY_API__PORT}/healthz`).catch(
          () => undefined,
        );
        if (health === undefined) await sleep(100);
      }
      expect(health?.status).toBe(200);
      expect(output).toContain('"msg":"control plane listening"');
    } finally {
      api.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
  });

  it("runs the worker from its bundle and stops it on SIGTERM", async () => {
    const worker: ChildProcess = spawn(process.execPath, [entry, "control-plane-worker"], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    worker.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    worker.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => worker.once("exit", resolve));
    try {
      for (let i = 0; i < 300 && !output.includes('"msg":"worker started"'); i++) {
        if (worker.exitCode !== null) throw new Error(`the worker exited:\n${output}`);
        await sleep(100);
      }
      expect(output).toContain('"msg":"worker started"');
    } finally {
      worker.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
  });

  it("refuses to start with one line naming the setting at fault", async () => {
    const missing = join(dir, "no-such-ca.pem");
    const api = await run(["control-plane-api"], { KEYWAY_GATEWAY__CA_CERT_PATH: missing });
    expect(api.code).toBe(1);
    expect(api.stderr).toBe(
      `control-plane-api: cannot start: config error: gateway.ca_cert_path: ${missing}: file not found\n`,
    );

    // The gateway's proxy port is taken: one line naming the port and its setting; no lingering.
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const address = taken.address();
    const port = typeof address === "object" && address !== null ? address.port : 0;
    try {
      const gateway = await run(["data-plane-gateway"], {
        KEYWAY_GATEWAY__PORT: String(port),
        KEYWAY_GATEWAY__ADMIN_PORT: String(await getFreePort()),
      });
      expect(gateway.code).toBe(1);
      expect(gateway.stderr).toBe(
        `data-plane-gateway: cannot start: port ${port} (gateway.port) is in use\n`,
      );
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it("runs the CLI from its bundle against the database the API migrated", async () => {
    const result = await run(["keyway", "audit", "verify", "--from-database"]);
    expect(result.stderr).toBe("");
    expect(result.stdout).toMatch(/^audit chain ok: \d+ entries checked\n$/);
    expect(result.code).toBe(0);
  });
});
