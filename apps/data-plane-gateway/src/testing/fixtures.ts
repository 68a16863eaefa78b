import { execFile } from "node:child_process";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import type { CompiledRuntimePlan, EgressPolicy, EgressRoute } from "@keyway/integrations-core";

/** Plans, upstream handlers and a curl runner shared by this package's integration tests. */

/** A clock set by the test: `at` moves it to a chosen instant (ms since the start). */
export function testClock() {
  const start = Date.parse("2026-01-01T00:00:00Z");
  let nowMs = start;
  return {
    now: () => new Date(nowMs),
    at(ms: number) {
      nowMs = start + ms;
    },
  };
}

export function testPlan(routes: EgressRoute[], egressPolicy?: EgressPolicy): CompiledRuntimePlan {
  return {
    schemaVersion: 1,
    profileVersionId: "pv_test",
    routes,
    files: [],
    env: [],
    processes: [],
    workspaceSources: [],
    mcpServers: [],
    agentRuntimes: [],
    ...(egressPolicy ? { egressPolicy } : {}),
  };
}

export function testRoute(
  id: string,
  host: string,
  baseUrl: string,
  auth: EgressRoute["auth"],
  extra: Partial<EgressRoute["match"]> = {},
): EgressRoute {
  return {
    id,
    bindingId: `bind_${id}`,
    match: { hosts: [host], ...extra },
    upstream: { baseUrl },
    auth,
    credential: { connectionId: `conn_${id}`, secretType: "api_key" },
  };
}

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  bodyBytes: number;
}

/**
 * An upstream that records what it received (server side) and answers without echoing headers,
 * so a test can check both what reached the upstream and what the client saw.
 */
export function recordingUpstream(received: ReceivedRequest[]) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let bodyBytes = 0;
    for await (const chunk of req) bodyBytes += (chunk as Buffer).length;
    received.push({
      method: req.method ?? "",
      url: req.url ?? "",
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      bodyBytes,
    });
    const body = JSON.stringify({ ok: true, bodyBytes });
    res.writeHead(200, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
    });
    res.end(body);
  };
}

export interface CurlResult {
  status: number;
  headers: string;
  body: string;
  exitCode: number;
  stderr: string;
}

/** Runs /usr/bin/curl; the status and headers are those of the final (non-CONNECT) response. */
export function curl(args: readonly string[]): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile(
      "/usr/bin/curl",
      ["-sS", "-i", "--suppress-connect-headers", "--max-time", "20", ...args],
      { encoding: "latin1", maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const split = stdout.indexOf("\r\n\r\n");
        const headers = split < 0 ? stdout : stdout.slice(0, split);
        const status = Number(/^HTTP\/[0-9.]+ ([0-9]{3})/.exec(headers)?.[1] ?? 0);
        resolve({
          status,
          headers,
          body: split < 0 ? "" : stdout.slice(split + 4),
          exitCode: error && typeof error.code === "number" ? error.code : 0,
          stderr,
        });
      },
    );
  });
}
