import { readFile } from "node:fs/promises";
import { createTestCa } from "@keyway/test-harness";
import { ProxyAgent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createApiKeyConnection,
  createHttpApiTarget,
  createOrganization,
  curl,
  errorCode,
  type RecordingUpstream,
  type Stack,
  type StartedSession,
  startRecordingUpstream,
  startSessionWith,
  startStack,
} from "./support/stack";

/**
 * The gateway's promise with the real control plane and the real gateway process: a sandbox
 * holding only its session token reaches HTTPS (CONNECT + TLS interception) and plain-HTTP
 * upstreams with curl and undici; the upstream receives the credential the organization stored,
 * the client's own Authorization never arrives, and nothing the sandbox sees holds the secret.
 */

const BEARER_KEY = "sk-system-bearer-4f1c9e0a7d";
const HEADER_KEY = "hdr-system-key-83b2d6";
const UNTRUSTED_KEY = "sk-untrusted-upstream-19ad4";

let stack: Stack;
let secureApi: RecordingUpstream;
let plainApi: RecordingUpstream;
/** HTTPS with a certificate from a CA outside `gateway.upstream_ca_path`. */
let untrustedApi: RecordingUpstream;
let session: StartedSession;
let gatewayCaPem: string;

beforeAll(async () => {
  stack = await startStack("injection");
  gatewayCaPem = await readFile(stack.gatewayCaPath, "utf8");
  secureApi = await startRecordingUpstream(stack.upstreamCa);
  plainApi = await startRecordingUpstream();
  untrustedApi = await startRecordingUpstream(
    await createTestCa({ commonName: "A CA the gateway does not trust" }),
  );
  await createHttpApiTarget(stack, "secure-api", { baseUrl: `${secureApi.url}/v1` });
  await createHttpApiTarget(stack, "plain-api", {
    baseUrl: `${plainApi.url}/v1`,
    auth: { type: "header", name: "X-Api-Key" },
  });
  await createHttpApiTarget(stack, "untrusted-api", { baseUrl: `${untrustedApi.url}/v1` });
  const org = await createOrganization(stack, "Injection Org");
  const secure = await createApiKeyConnection(stack, org, {
    targetKey: "secure-api",
    secrets: { apiKey: BEARER_KEY },
  });
  const plain = await createApiKeyConnection(stack, org, {
    targetKey: "plain-api",
    secrets: { apiKey: HEADER_KEY },
  });
  const untrusted = await createApiKeyConnection(stack, org, {
    targetKey: "untrusted-api",
    secrets: { apiKey: UNTRUSTED_KEY },
  });
  session = await startSessionWith(stack, org, [
    { connectionId: secure, kind: "connector" },
    { connectionId: plain, kind: "connector" },
    { connectionId: untrusted, kind: "connector" },
  ]);
});

afterAll(async () => {
  await Promise.all([secureApi?.close(), plainApi?.close(), untrustedApi?.close()]);
  await stack?.close();
});

function expectNoSecret(text: string): void {
  expect(text).not.toContain(BEARER_KEY);
  expect(text).not.toContain(HEADER_KEY);
  expect(text).not.toContain(UNTRUSTED_KEY);
}

describe("curl through the gateway", () => {
  it("reaches an HTTPS upstream through CONNECT and interception, with the bearer injected", async () => {
    const result = await curl([
      "--proxy",
      session.proxyUrl,
      "--cacert",
      stack.gatewayCaPath,
      "-H",
      "Authorization: Bearer placeholder-in-the-sandbox",
      "-H",
      "content-type: application/json",
      "--data",
      '{"prompt":"hi"}',
      `${secureApi.url}/v1/chat?stream=false`,
    ]);
    expect(result.stderr).toBe("");
    expect(result.status).toBe(200);
    const seen = secureApi.last();
    expect(seen.method).toBe("POST");
    expect(seen.url).toBe("/v1/chat?stream=false");
    expect(seen.body).toBe('{"prompt":"hi"}');
    expect(seen.headers.authorization).toBe(`Bearer ${BEARER_KEY}`);
    expect(seen.rawHeaders.filter((name) => name.toLowerCase() === "authorization")).toHaveLength(
      1,
    );
    expect(seen.headers["proxy-authorization"]).toBeUndefined();
    expectNoSecret(result.stdout + result.stderr);
  });

  it("terminates TLS itself: a client trusting only the upstream's CA refuses the connection", async () => {
    const upstreamCaPath = `${stack.dir}/upstream-ca.pem`;
    const before = secureApi.received.length;
    const result = await curl([
      "--proxy",
      session.proxyUrl,
      "--cacert",
      upstreamCaPath,
      `${secureApi.url}/v1/models`,
    ]);
    expect(result.exitCode).toBe(60); // CURLE_PEER_FAILED_VERIFICATION
    expect(secureApi.received.length).toBe(before);
  });

  it("refuses an upstream whose CA is not trusted: 502 upstream_tls_error, the reason in the log", async () => {
    const result = await curl([
      "--proxy",
      session.proxyUrl,
      "--cacert",
      stack.gatewayCaPath,
      `${untrustedApi.url}/v1/models`,
    ]);
    expect(result.status).toBe(502);
    expect(errorCode(result.body)).toBe("upstream_tls_error");
    expect(untrustedApi.received).toHaveLength(0);
    expectNoSecret(result.stdout + result.stderr);
    // The access log line is written after the response: wait for it (bounded).
    for (let i = 0; i < 100 && !stack.gatewayOutput().includes('"upstream_tls_error"'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const line = stack
      .gatewayOutput()
      .split("\n")
      .find((text) => text.includes('"outcome":"upstream_tls_error"'));
    expect(line).toContain('"reason":"UNABLE_TO_VERIFY_LEAF_SIGNATURE: ');
    expectNoSecret(stack.gatewayOutput());
  });

  it("reaches a plain-HTTP upstream with the header credential, dropping the client's copies", async () => {
    const result = await curl([
      "--proxy",
      session.proxyUrl,
      "-H",
      "X-Api-Key: placeholder",
      "-H",
      "Authorization: Basic c2FuZGJveDpndWVzcw==",
      `${plainApi.url}/v1/items?page=2`,
    ]);
    expect(result.stderr).toBe("");
    expect(result.status).toBe(200);
    const seen = plainApi.last();
    expect(seen.url).toBe("/v1/items?page=2");
    expect(seen.headers["x-api-key"]).toBe(HEADER_KEY);
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.headers["proxy-authorization"]).toBeUndefined();
    expectNoSecret(result.stdout);
  });

  it("refuses a path the route does not cover on a managed host: 403 policy_denied", async () => {
    const before = secureApi.received.length;
    const result = await curl([
      "--proxy",
      session.proxyUrl,
      "--cacert",
      stack.gatewayCaPath,
      `${secureApi.url}/admin/users`,
    ]);
    expect(result.status).toBe(403);
    expect(errorCode(result.body)).toBe("policy_denied");
    expect(secureApi.received.length).toBe(before);
  });
});

describe("undici through the gateway", () => {
  it("tunnels to HTTPS and sends absolute-form plain HTTP, the credential injected both ways", async () => {
    const tunnelling = new ProxyAgent({ uri: session.proxyUrl, requestTls: { ca: gatewayCaPem } });
    const absolute = new ProxyAgent({ uri: session.proxyUrl, proxyTunnel: false });
    try {
      const https = await request(`${secureApi.url}/v1/embeddings`, {
        dispatcher: tunnelling,
        method: "POST",
        headers: { authorization: "Bearer sandbox-placeholder" },
        body: "x".repeat(1000),
      });
      const httpsText = await https.body.text();
      expect(https.statusCode).toBe(200);
      expect(secureApi.last().headers.authorization).toBe(`Bearer ${BEARER_KEY}`);
      expect(secureApi.last().body).toHaveLength(1000);
      expectNoSecret(httpsText + JSON.stringify(https.headers));

      for (let i = 0; i < 3; i++) {
        const plain = await request(`${plainApi.url}/v1/n/${i}`, { dispatcher: absolute });
        expectNoSecret((await plain.body.text()) + JSON.stringify(plain.headers));
        expect(plain.statusCode).toBe(200);
        expect(plainApi.last().url).toBe(`/v1/n/${i}`);
        expect(plainApi.last().headers["x-api-key"]).toBe(HEADER_KEY);
      }
    } finally {
      await Promise.all([tunnelling.close(), absolute.close()]);
    }
  });
});

describe("logs", () => {
  it("hold one line per request and never a credential or the session token", async () => {
    const output = stack.gatewayOutput();
    expect(output).toContain(`"sessionId":"${session.id}"`);
    expect(output).toContain('"outcome":"forwarded"');
    expectNoSecret(output);
    expect(output).not.toContain(session.token);
    const controlPlane = stack.controlPlaneLogs.join("\n");
    expect(controlPlane).toContain("/internal/v1/credentials/resolve");
    expectNoSecret(controlPlane);
  });
});
