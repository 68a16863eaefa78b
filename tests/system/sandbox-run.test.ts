import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  createGitHttpBackend,
  type GitHttpBackend,
  type RunningServer,
  startHttpsServer,
} from "@keyway/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyway, startKeyway } from "./support/keyway-cli";
import { type McpUpstream, startMcpUpstream } from "./support/mcp-upstream";
import {
  createApiKeyConnection,
  createHttpApiTarget,
  createOrganization,
  type RecordingUpstream,
  run,
  type Stack,
  startRecordingUpstream,
  startStack,
  stringAt,
} from "./support/stack";

/**
 * Real clients through `keyway sandbox run`, each with nothing but the environment it sets
 * (the test passes only PATH and the API's URL and token to `keyway`): upstreams bound as
 * http-api and GitHub Enterprise Server targets on loopback addresses — the case a plain
 * `NO_PROXY=localhost,127.0.0.1` sent around the gateway — receive the stored credential, never
 * the placeholder the client sent, and the MCP tool allow-list holds. Then the session's end:
 * revoked and the files removed on a normal exit, a non-zero exit, a signal to the child and a
 * signal to `keyway`.
 */

const PLAIN_KEY = "sk-sandbox-plain-5b1e7c";
const SECURE_KEY = "sk-sandbox-secure-93d0aa";
const PAT = "ghp_sandboxRunPersonalAccessToken42";
const PLACEHOLDER = "placeholder-from-the-sandbox";

let stack: Stack;
let plainApi: RecordingUpstream;
let secureApi: RecordingUpstream;
let mcp: McpUpstream;
let git: GitHttpBackend;
let gitServer: RunningServer;
let orgToken: string;
let profileId: string;
let clients: string;

const requireFromCli = createRequire(
  join(import.meta.dirname, "..", "..", "apps", "cli", "package.json"),
);
const undiciUrl = pathToFileURL(requireFromCli.resolve("undici")).href;
const sdkEsm = (path: string) =>
  pathToFileURL(
    requireFromCli.resolve(`@modelcontextprotocol/sdk/${path}`).replace("/dist/cjs/", "/dist/esm/"),
  ).href;

beforeAll(async () => {
  stack = await startStack("sandbox-run");
  plainApi = await startRecordingUpstream();
  secureApi = await startRecordingUpstream(stack.upstreamCa);
  mcp = await startMcpUpstream();
  git = await createGitHttpBackend({ username: "x-access-token", password: PAT });
  git.createRepository("octo-org/widgets", { "README.md": "# widgets\n" });
  gitServer = await startHttpsServer(git.handler, { ca: stack.upstreamCa });

  await createHttpApiTarget(stack, "plain-api", { baseUrl: `${plainApi.url}/v1` });
  await stack.apiOk(stack.operatorToken, "POST", "/v1/operator/targets", {
    targetKey: "secure-api",
    variantId: "http-api",
    config: {
      baseUrl: `${secureApi.url}/v1`,
      mcpServerUrl: `${mcp.url}/mcp`,
      mcpServerName: "issues",
    },
  });
  await stack.apiOk(stack.operatorToken, "PATCH", "/v1/operator/targets/github-enterprise-server", {
    config: { webBaseUrl: gitServer.url },
  });
  await stack.apiOk(
    stack.operatorToken,
    "POST",
    "/v1/operator/targets/github-enterprise-server/enable",
  );

  orgToken = await createOrganization(stack, "Sandbox Org");
  const plain = await createApiKeyConnection(stack, orgToken, {
    targetKey: "plain-api",
    secrets: { apiKey: PLAIN_KEY },
  });
  const secure = await createApiKeyConnection(stack, orgToken, {
    targetKey: "secure-api",
    secrets: { apiKey: SECURE_KEY },
  });
  const github = await createApiKeyConnection(stack, orgToken, {
    targetKey: "github-enterprise-server",
    methodId: "personal-access-token",
    secrets: { token: PAT },
  });
  const profile = await stack.apiOk(orgToken, "POST", "/v1/sandbox-profiles", { name: "agents" });
  profileId = stringAt(profile, "id");
  await stack.apiOk(orgToken, "POST", `/v1/sandbox-profiles/${profileId}/versions`, {
    bindings: [
      { connectionId: plain, kind: "connector", config: {} },
      {
        connectionId: secure,
        kind: "connector",
        config: { mcpToolAllowlist: ["list_issues", "get_issue"] },
      },
      { connectionId: github, kind: "git", config: { repositories: ["octo-org/widgets"] } },
    ],
  });

  clients = await mkdtemp(join(tmpdir(), "keyway-sandbox-clients-"));
  await writeFile(
    join(clients, "fetch.mjs"),
    `const r = await fetch(process.argv[2], { headers: { authorization: "Bearer ${PLACEHOLDER}" } });
console.log(r.status, await r.text());\n`,
  );
  await writeFile(
    join(clients, "undici.mjs"),
    `const { request } = await import(${JSON.stringify(undiciUrl)});
const r = await request(process.argv[2], { headers: { authorization: "Bearer ${PLACEHOLDER}" } });
console.log(r.statusCode, await r.body.text());\n`,
  );
  await writeFile(
    join(clients, "mcp.mjs"),
    `const { Client } = await import(${JSON.stringify(sdkEsm("client/index.js"))});
const { StreamableHTTPClientTransport } = await import(${JSON.stringify(sdkEsm("client/streamableHttp.js"))});
const client = new Client({ name: "sandbox-agent", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(process.argv[2])));
const tools = (await client.listTools()).tools.map((t) => t.name);
const allowed = await client.callTool({ name: "get_issue", arguments: {} });
let forbidden;
try {
  forbidden = await client.callTool({ name: "delete_issue", arguments: {} });
} catch (error) {
  forbidden = { refused: String(error) };
}
console.log(JSON.stringify({ tools, allowed, forbidden }));
await client.close();\n`,
  );
});

afterAll(async () => {
  await Promise.all([plainApi?.close(), secureApi?.close(), mcp?.close(), gitServer?.close()]);
  await git?.cleanup();
  await stack?.close();
  if (clients) await rm(clients, { recursive: true, force: true });
});

const apiEnv = () => ({ KEYWAY_URL: stack.apiUrl, KEYWAY_TOKEN: orgToken });

/** `keyway sandbox run --profile agents -- <command>`. */
function sandboxRun(command: readonly string[], options: string[] = []) {
  return keyway(["sandbox", "run", "--profile", "agents", ...options, "--", ...command], apiEnv());
}

function receivedAt(upstream: RecordingUpstream, path: string) {
  const found = upstream.received.filter((r) => r.url === path);
  expect(found, `${path} reached the upstream once`).toHaveLength(1);
  return found[0];
}

function expectInjected(upstream: RecordingUpstream, path: string, key: string) {
  const seen = receivedAt(upstream, path);
  expect(seen?.headers.authorization).toBe(`Bearer ${key}`);
  expect(JSON.stringify(seen?.rawHeaders)).not.toContain(PLACEHOLDER);
}

async function sessionsOfProfile(): Promise<{ id: string; status: string }[]> {
  const list = await stack.apiOk(orgToken, "GET", `/v1/sandbox-sessions?profileId=${profileId}`);
  return (list as { items: { id: string; status: string }[] }).items;
}

describe("real clients through keyway sandbox run", () => {
  it("curl over HTTP and HTTPS to loopback upstreams", async () => {
    const auth = ["-H", `Authorization: Bearer ${PLACEHOLDER}`];
    const http = await sandboxRun(["curl", "-sS", ...auth, `${plainApi.url}/v1/curl-http`]);
    expect(http.stderr).toBe("");
    expect(http.exitCode).toBe(0);
    expect(http.stdout).toContain('"ok":true');
    expectInjected(plainApi, "/v1/curl-http", PLAIN_KEY);

    const https = await sandboxRun(["curl", "-sS", ...auth, `${secureApi.url}/v1/curl-https`]);
    expect(https.stderr).toBe("");
    expect(https.exitCode).toBe(0);
    expectInjected(secureApi, "/v1/curl-https", SECURE_KEY);
  });

  it("git clone over HTTPS from the GHES target on loopback", async () => {
    const result = await sandboxRun([
      "sh",
      "-c",
      `git clone -q ${gitServer.url}/octo-org/widgets.git widgets && cat widgets/README.md`,
    ]);
    expect(result.stderr).toBe("");
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toBe("# widgets\n");
    expect(new Set(git.seenCredentials)).toEqual(new Set([`x-access-token:${PAT}`]));
  });

  it("Python urllib (HTTP and HTTPS) and requests", async () => {
    const urllib = `import sys, urllib.request
for url in sys.argv[1:]:
    req = urllib.request.Request(url, headers={"Authorization": "Bearer ${PLACEHOLDER}"})
    print(urllib.request.urlopen(req).status)`;
    const result = await sandboxRun([
      "python3",
      "-c",
      urllib,
      `${plainApi.url}/v1/urllib-http`,
      `${secureApi.url}/v1/urllib-https`,
    ]);
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe("200\n200\n");
    expectInjected(plainApi, "/v1/urllib-http", PLAIN_KEY);
    expectInjected(secureApi, "/v1/urllib-https", SECURE_KEY);

    const hasRequests = (await run("python3", ["-c", "import requests"])).exitCode === 0;
    if (!hasRequests) return;
    const requests = `import sys, requests
for url in sys.argv[1:]:
    print(requests.get(url, headers={"Authorization": "Bearer ${PLACEHOLDER}"}).status_code)`;
    const viaRequests = await sandboxRun([
      "python3",
      "-c",
      requests,
      `${plainApi.url}/v1/requests-http`,
      `${secureApi.url}/v1/requests-https`,
    ]);
    expect(viaRequests.stderr).toBe("");
    expect(viaRequests.stdout).toBe("200\n200\n");
    expectInjected(plainApi, "/v1/requests-http", PLAIN_KEY);
    expectInjected(secureApi, "/v1/requests-https", SECURE_KEY);
  });

  it("Node's built-in fetch and undici", async () => {
    // One sandbox for the four runs: each `keyway` start costs seconds on a busy machine.
    const runs = (["fetch", "undici"] as const).flatMap((client) =>
      [plainApi, secureApi].map((upstream) => ({
        client,
        upstream,
        path: `/v1/node-${client}-${upstream === plainApi ? "http" : "https"}`,
      })),
    );
    const script = runs
      .map((r) => `node ${join(clients, `${r.client}.mjs`)} ${r.upstream.url}${r.path}`)
      .join(" && ");
    const result = await sandboxRun(["sh", "-c", script]);
    expect(result.stderr).toBe("");
    expect(result.stdout.split("\n").filter((line) => line.startsWith("200 "))).toHaveLength(4);
    for (const r of runs)
      expectInjected(r.upstream, r.path, r.upstream === plainApi ? PLAIN_KEY : SECURE_KEY);
  });

  it("the MCP SDK's Streamable HTTP client: credential injected, allow-list held", async () => {
    const before = mcp.authorizations.length;
    const result = await sandboxRun(["node", join(clients, "mcp.mjs"), `${mcp.url}/mcp`]);
    expect(result.stderr).toBe("");
    const output = JSON.parse(result.stdout) as {
      tools: string[];
      allowed: { content: { text: string }[] };
      forbidden: unknown;
    };
    expect(output.tools.sort()).toEqual(["get_issue", "list_issues"]);
    expect(output.allowed.content[0]?.text).toBe("get_issue ran");
    expect(JSON.stringify(output.forbidden)).not.toContain("delete_issue ran");
    expect(mcp.toolCalls).not.toContain("delete_issue");
    const seen = mcp.authorizations.slice(before);
    expect(seen.length).toBeGreaterThan(0);
    expect(new Set(seen)).toEqual(new Set([`Bearer ${SECURE_KEY}`]));
  });

  it("keyway sandbox mcp-tools lists the tools the allow-list leaves visible, then revokes", async () => {
    const before = mcp.authorizations.length;
    const result = await keyway(
      ["sandbox", "mcp-tools", "--profile", "agents", "--json"],
      apiEnv(),
    );
    expect(result.exitCode, result.stderr).toBe(0);
    const { servers } = JSON.parse(result.stdout) as {
      servers: { name: string; url: string; tools: { name: string }[]; error?: string }[];
    };
    expect(servers).toEqual([
      {
        name: "issues",
        url: `${mcp.url}/mcp`,
        tools: [
          { name: "list_issues", description: "list_issues tool" },
          { name: "get_issue", description: "get_issue tool" },
        ],
      },
    ]);
    expect(new Set(mcp.authorizations.slice(before))).toEqual(new Set([`Bearer ${SECURE_KEY}`]));
    const sessions = await sessionsOfProfile();
    expect(sessions.filter((s) => s.status !== "revoked")).toEqual([]);
  });

  it("gives the command no API token and no credential", async () => {
    const result = await sandboxRun(["env"]);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).not.toContain("KEYWAY_TOKEN");
    expect(result.stdout).not.toContain(orgToken);
    for (const secret of [PLAIN_KEY, SECURE_KEY, PAT]) expect(result.stdout).not.toContain(secret);
    const noProxy = /^NO_PROXY=(.*)$/m.exec(result.stdout)?.[1];
    expect(noProxy).toBe("localhost,::1");
    const bundle = /^SSL_CERT_FILE=(.*)$/m.exec(result.stdout)?.[1] ?? "";
    expect(bundle).toMatch(/ca-bundle\.pem$/);
  });
});

describe("the session's end", () => {
  /** Runs `script` in the sandbox; returns keyway's result and the sandbox's HOME. */
  async function runAndFindHome(script: string, options: string[] = []) {
    const result = await sandboxRun(["sh", "-c", `echo "$HOME"; ${script}`], options);
    return { result, home: result.stdout.split("\n")[0] ?? "" };
  }

  async function expectAllRevoked() {
    const sessions = await sessionsOfProfile();
    expect(sessions.length).toBeGreaterThan(0);
    expect(sessions.filter((s) => s.status !== "revoked")).toEqual([]);
  }

  it("revokes and removes the files on exit 0 and on a non-zero exit", async () => {
    const ok = await runAndFindHome('test -s "$SSL_CERT_FILE"');
    expect(ok.result.exitCode).toBe(0);
    expect(ok.home).toMatch(/keyway-sandbox-/);
    expect(existsSync(ok.home)).toBe(false);
    await expectAllRevoked();

    const failed = await runAndFindHome("exit 3");
    expect(failed.result.exitCode).toBe(3);
    expect(existsSync(failed.home)).toBe(false);
    await expectAllRevoked();
  });

  it("revokes when the command dies from SIGTERM or SIGKILL (exit 128 + n)", async () => {
    const term = await runAndFindHome("kill -TERM $$");
    expect(term.result.exitCode).toBe(143);
    expect(existsSync(term.home)).toBe(false);
    const kill = await runAndFindHome("kill -KILL $$");
    expect(kill.result.exitCode).toBe(137);
    expect(existsSync(kill.home)).toBe(false);
    await expectAllRevoked();
  });

  it("passes SIGTERM sent to keyway on to the command, then revokes", async () => {
    const running = startKeyway(
      ["sandbox", "run", "--profile", "agents", "--", "sh", "-c", 'echo "$HOME"; exec sleep 60'],
      apiEnv(),
    );
    while (!running.stdout().includes("\n")) await new Promise((r) => setTimeout(r, 50));
    const home = running.stdout().split("\n")[0] ?? "";
    expect(existsSync(join(home, ".keyway", "ca-bundle.pem"))).toBe(true);
    running.child.kill("SIGTERM");
    const result = await running.done;
    expect(result.exitCode).toBe(143);
    expect(existsSync(home)).toBe(false);
    await expectAllRevoked();
  });

  it("keeps the files with --keep, still revoking", async () => {
    const kept = await runAndFindHome("true", ["--keep"]);
    expect(kept.result.exitCode).toBe(0);
    expect(await readFile(join(kept.home, ".keyway", "ca-bundle.pem"), "utf8")).toContain(
      "BEGIN CERTIFICATE",
    );
    await expectAllRevoked();
    await rm(join(kept.home, ".."), { recursive: true, force: true });
  });
});
