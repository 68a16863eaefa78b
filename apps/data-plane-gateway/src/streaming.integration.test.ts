import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import {
  createTestCa,
  type RunningServer,
  startHttpsServer,
  type TestCa,
} from "@keyway/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestControlPlane, type TestControlPlane } from "./testing/control-plane-stack";
import { testPlan, testRoute } from "./testing/fixtures";
import { startTestGateway, type TestGateway } from "./testing/test-gateway";

/**
 * Bodies stream through the gateway with backpressure: 200 MB up and 200 MB down, generated on
 * the fly, while the process (gateway and upstream; curl is a separate process) grows by less
 * than 100 MB. A gateway that buffered a body would grow by at least its size.
 */

const SIZE = 200 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);
const GROWTH_LIMIT = 100 * 1024 * 1024;

let cp: TestControlPlane;
let gatewayCa: TestCa;
let upstreamCa: TestCa;
let upstream: RunningServer;
let gw: TestGateway;
let token: string;
let dir: string;
let gatewayCaPath: string;

async function upstreamHandler(req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method === "GET") {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": SIZE });
    for (let sent = 0; sent < SIZE; sent += CHUNK.length) {
      if (!res.write(CHUNK)) await once(res, "drain");
    }
    res.end();
    return;
  }
  let receivedBytes = 0;
  for await (const chunk of req) receivedBytes += (chunk as Buffer).length;
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ receivedBytes }));
}

function generatedBody(size: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= size) {
        this.push(null);
        return;
      }
      sent += CHUNK.length;
      this.push(CHUNK);
    },
  });
}

/** Runs curl and samples this process's RSS until it exits; returns stdout and the peak growth. */
async function curlMeasured(args: string[], stdin?: Readable) {
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 25);
  const child = spawn("/usr/bin/curl", ["-sS", "--max-time", "120", ...args], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  if (stdin) stdin.pipe(child.stdin);
  else child.stdin.end();
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (text: string) => {
    stdout += text;
  });
  child.stderr.setEncoding("utf8").on("data", (text: string) => {
    stderr += text;
  });
  const [code] = await once(child, "close");
  clearInterval(sampler);
  return { code: Number(code), stdout, stderr, growth: peak - baseline };
}

beforeAll(async () => {
  cp = await startTestControlPlane();
  gatewayCa = await createTestCa();
  upstreamCa = await createTestCa();
  upstream = await startHttpsServer(upstreamHandler, { ca: upstreamCa });
  await cp.setCredential("r_files", { value: "files-secret" });
  const digest = await cp.addPlan(
    testPlan([
      testRoute("r_files", "files.example.test", upstream.url, {
        type: "bearer",
        name: "authorization",
        scheme: "Bearer",
      }),
    ]),
  );
  token = await cp.issueToken({ sessionId: "sess_stream", planDigest: digest });
  gw = await startTestGateway({ controlPlane: cp, gatewayCa, upstreamCa });
  dir = await mkdtemp(join(tmpdir(), "keyway-gw-stream-"));
  gatewayCaPath = join(dir, "gateway-ca.pem");
  await writeFile(gatewayCaPath, gatewayCa.certPem);
  // Warm up TLS, pools and the credential cache so the baseline holds them already.
  await curlMeasured([
    "--proxy",
    gw.proxyUrlFor(token),
    "--cacert",
    gatewayCaPath,
    "-o",
    "/dev/null",
    "-X",
    "POST",
    "--data",
    "warm",
    "https://files.example.test/upload",
  ]);
});

afterAll(async () => {
  await gw?.close();
  await Promise.all([cp?.close(), upstream?.close()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("streaming", () => {
  it("streams a 200 MB download with bounded memory", async () => {
    const result = await curlMeasured([
      "--proxy",
      gw.proxyUrlFor(token),
      "--cacert",
      gatewayCaPath,
      "-o",
      "/dev/null",
      "-w",
      "%{http_code} %{size_download}",
      "https://files.example.test/download",
    ]);
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe(`200 ${SIZE}`);
    expect(result.growth).toBeLessThan(GROWTH_LIMIT);
  });

  it("streams a 200 MB chunked upload with bounded memory", async () => {
    const result = await curlMeasured(
      [
        "--proxy",
        gw.proxyUrlFor(token),
        "--cacert",
        gatewayCaPath,
        "-X",
        "POST",
        "-T",
        "-",
        "https://files.example.test/upload",
      ],
      generatedBody(SIZE),
    );
    expect(result.stderr).toBe("");
    expect(JSON.parse(result.stdout)).toEqual({ receivedBytes: SIZE });
    expect(result.growth).toBeLessThan(GROWTH_LIMIT);
    const line = gw.logger.lines
      .map((text) => JSON.parse(text))
      .findLast((entry) => entry.msg === "request" && entry.method === "POST");
    expect(line).toMatchObject({ bytesIn: SIZE, status: 200, routeId: "r_files" });
  });
});
