import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, writeDevelopmentConfig } from "@keyway/config";
import { createMemoryLogger } from "@keyway/control-plane-api/logger";
import { type RunningControlPlane, startControlPlane } from "@keyway/control-plane-api/server";
import { createTestCa, createTestDatabase, getFreePort } from "@keyway/test-harness";
import { type CliDeps, runCli } from "../cli";

/**
 * The real control plane for the CLI's integration tests (`startControlPlane`, as `pnpm start`
 * runs it), on a loopback port over a fresh PostgreSQL database, with a development config in a
 * temporary directory. It fetches with whatever `globalThis.fetch` is when it starts, so a test
 * that stands in for a third party with msw starts msw first.
 */
export interface CliTestControlPlane {
  url: string;
  operatorToken: string;
  /** A private temporary directory, removed by `close`. */
  dir: string;
  /** One JSON request to the API, for set-up the test is not about; throws unless 2xx. */
  api(token: string, method: string, path: string, body?: unknown): Promise<unknown>;
  /** Creates an organization; resolves with its admin token. */
  createOrganization(name: string): Promise<string>;
  close(): Promise<void>;
}

export async function startCliTestControlPlane(name: string): Promise<CliTestControlPlane> {
  const dir = await mkdtemp(join(tmpdir(), `keyway-${name}-`));
  const files = await writeDevelopmentConfig({ dir: join(dir, ".keyway") });
  const gatewayCa = await createTestCa({ commonName: "Keyway CLI test gateway CA" });
  await writeFile(files.gatewayCaCertPath, gatewayCa.certPem, { mode: 0o644 });
  await writeFile(files.gatewayCaKeyPath, gatewayCa.keyPem, { mode: 0o600 });
  const port = await getFreePort();
  const config = await loadConfig({
    path: files.configPath,
    env: { KEYWAY_API__PORT: String(port), KEYWAY_API__PUBLIC_URL: `http://127.0.0.1:${port}` },
  });
  const database = await createTestDatabase(name.replaceAll("-", "_"));
  let controlPlane: RunningControlPlane;
  try {
    controlPlane = await startControlPlane(config, {
      databaseUrl: database.url,
      logger: createMemoryLogger({ level: "warn" }),
    });
  } catch (error) {
    await database.drop();
    throw error;
  }
  const url = controlPlane.url;
  const self: CliTestControlPlane = {
    url,
    operatorToken: files.operatorToken,
    dir,
    async createOrganization(name) {
      const created = (await self.api(files.operatorToken, "POST", "/v1/operator/organizations", {
        name,
      })) as { adminToken: { token: string } };
      return created.adminToken.token;
    },
    async api(token, method, path, body) {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
      return text === "" ? undefined : JSON.parse(text);
    },
    async close() {
      await controlPlane.close();
      await database.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return self;
}

/** The organization's connections of a target, as the API lists them. */
interface ListedConnection {
  id: string;
  status: string;
  displayName: string;
  externalSubjectId: string | null;
}

export async function connectionsOf(
  api: CliTestControlPlane,
  token: string,
  targetKey: string,
): Promise<ListedConnection[]> {
  const listed = (await api.api(
    token,
    "GET",
    `/v1/integration/connections?targetKey=${encodeURIComponent(targetKey)}`,
  )) as { items: ListedConnection[] };
  return listed.items;
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `keyway …` through `runCli` in this process; `deps` adds to or replaces the defaults. */
export async function runKeyway(
  argv: readonly string[],
  deps: Partial<CliDeps> & { env: NonNullable<CliDeps["env"]> },
  output: { stdout: string[]; stderr: string[] } = { stdout: [], stderr: [] },
): Promise<CliRun> {
  const code = await runCli(argv, {
    stdout: (text) => output.stdout.push(text),
    stderr: (text) => output.stderr.push(text),
    clock: { now: () => new Date() },
    ...deps,
  });
  return { code, stdout: output.stdout.join(""), stderr: output.stderr.join("") };
}
