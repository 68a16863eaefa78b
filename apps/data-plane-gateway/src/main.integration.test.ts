import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringifyConfig } from "@keyway/config";
import {
  createTestCa,
  getFreePort,
  type RunningServer,
  startHttpServer,
} from "@keyway/test-harness";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  startTestControlPlane,
  TEST_GATEWAY_ID,
  TEST_INTERNAL_AUDIENCE,
  TEST_ISSUER,
  TEST_SESSION_AUDIENCE,
  type TestControlPlane,
} from "./testing/control-plane-stack";
import {
  curl,
  type ReceivedRequest,
  recordingUpstream,
  testPlan,
  testRoute,
} from "./testing/fixtures";

/** The entry file: config file in, a listening gateway out, clean exit on SIGTERM. */

const here = dirname(fileURLToPath(import.meta.url));
let cp: TestControlPlane;
let upstream: RunningServer;
let dir: string;
let child: ChildProcess;
let proxyPort: number;
let adminPort: number;
let output = "";
const received: ReceivedRequest[] = [];

beforeAll(async () => {
  cp = await startTestControlPlane();
  upstream = await startHttpServer(recordingUpstream(received));
  const ca = await createTestCa({ commonName: "Gateway CA" });
  dir = await mkdtemp(join(tmpdir(), "keyway-gw-main-"));
  await writeFile(join(dir, "ca.pem"), ca.certPem);
  await writeFile(join(dir, "ca-key.pem"), ca.keyPem);
  await writeFile(join(dir, "gateway-key.json"), JSON.stringify(cp.gatewayKey.privateJwk));
  proxyPort = await getFreePort();
  adminPort = await getFreePort();
  await writeFile(
    join(dir, "keyway.toml"),
    stringifyConfig({
      sessions: { issuer: TEST_ISSUER, audience: TEST_SESSION_AUDIENCE },
      internal: { audience: TEST_INTERNAL_AUDIENCE },
      gateway: {
        port: proxyPort,
        admin_port: adminPort,
        control_plane_url: cp.url,
        ca_cert_path: "ca.pem",
        ca_key_path: "ca-key.pem",
        identity: { gateway_id: TEST_GATEWAY_ID, private_key_path: "gateway-key.json" },
      },
    }),
  );
  child = spawn(process.execPath, ["--import", "tsx", join(here, "main.ts")], {
    env: { ...process.env, KEYWAY_CONFIG: join(dir, "keyway.toml") },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
  });
});

afterAll(async () => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
  await Promise.all([cp?.close(), upstream?.close()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

it("starts from its config file, proxies with injection, and exits cleanly on SIGTERM", async () => {
  let ready = false;
  for (let i = 0; i < 300 && !ready; i++) {
    ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then(
      (response) => response.status === 200,
      () => false,
    );
    if (!ready) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect(ready, output).toBe(true);

  await cp.setCredential("r_main", { value: "main-secret" });
  const digest = await cp.addPlan(
    testPlan([
      testRoute("r_main", "main.example.test", upstream.url, { type: "header", name: "x-key" }),
    ]),
  );
  const token = await cp.issueToken({ sessionId: "sess_main_entry", planDigest: digest });
  const result = await curl([
    "--proxy",
    `http://session:${token}@127.0.0.1:${proxyPort}`,
    "http://main.example.test/hello",
  ]);
  expect(result.status).toBe(200);
  expect(received.at(-1)?.headers["x-key"]).toBe("main-secret");
  // The access log line is written in a batch after the response and reaches this process
  // through a pipe, so it can arrive after curl is done: wait for it (bounded).
  for (let i = 0; i < 100 && !output.includes('"msg":"request"'); i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  expect(output).toContain('"msg":"request"');
  expect(output).not.toContain("main-secret");
  expect(output).not.toContain(token);

  child.kill("SIGTERM");
  const [code] = await once(child, "exit");
  expect(code).toBe(0);
});

it("refuses to start when gateway.upstream_ca_path names a missing file, naming the key", async () => {
  const missing = join(dir, "no-such-bundle.pem");
  const refused = spawn(process.execPath, ["--import", "tsx", join(here, "main.ts")], {
    env: {
      ...process.env,
      KEYWAY_CONFIG: join(dir, "keyway.toml"),
      KEYWAY_GATEWAY__UPSTREAM_CA_PATH: missing,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  refused.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });
  const [code] = await once(refused, "exit");
  expect(code).toBe(1);
  expect(stderr).toContain(`config error: gateway.upstream_ca_path: ${missing}: file not found`);
});
