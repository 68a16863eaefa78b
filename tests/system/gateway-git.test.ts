import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createGitHttpBackend,
  type GitHttpBackend,
  type RunningServer,
  startHttpsServer,
} from "@keyway/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createApiKeyConnection,
  createOrganization,
  curl,
  errorCode,
  run,
  type Stack,
  type StartedSession,
  startSessionWith,
  startStack,
} from "./support/stack";

/**
 * git over smart HTTP through the real gateway: the operator points the GitHub Enterprise Server
 * target at a local HTTPS `git http-backend`, an organization connects it with a personal access
 * token and binds one repository. `git clone` in the sandbox, given only the proxy URL and the
 * gateway CA, succeeds with `x-access-token:<PAT>` injected as Basic credentials; a repository
 * the binding does not name, and pushing to the bound one, are refused before reaching the server.
 */

const PAT = "ghp_systemTestPersonalAccessToken0123";

let stack: Stack;
let git: GitHttpBackend;
let server: RunningServer;
let session: StartedSession;
let work: string;

beforeAll(async () => {
  stack = await startStack("git");
  git = await createGitHttpBackend({ username: "x-access-token", password: PAT });
  git.createRepository("octo-org/widgets", { "README.md": "# widgets\n", "src/a.txt": "a\n" });
  git.createRepository("octo-org/secret-plans", { "PLANS.md": "not for this sandbox\n" });
  server = await startHttpsServer(git.handler, { ca: stack.upstreamCa });
  work = await mkdtemp(join(tmpdir(), "keyway-system-git-work-"));

  // The registry-synced GHES target has no server until the operator names one.
  await stack.apiOk(stack.operatorToken, "PATCH", "/v1/operator/targets/github-enterprise-server", {
    config: { webBaseUrl: server.url },
  });
  await stack.apiOk(
    stack.operatorToken,
    "POST",
    "/v1/operator/targets/github-enterprise-server/enable",
  );
  const org = await createOrganization(stack, "Octo Org");
  const connectionId = await createApiKeyConnection(stack, org, {
    targetKey: "github-enterprise-server",
    methodId: "personal-access-token",
    secrets: { token: PAT },
  });
  session = await startSessionWith(stack, org, [
    { connectionId, kind: "git", config: { repositories: ["octo-org/widgets"] } },
  ]);
});

afterAll(async () => {
  await server?.close();
  await git?.cleanup();
  await stack?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

/** git as a sandbox runs it: the session's proxy, the gateway CA, no credentials of its own. */
function sandboxGit(args: string[], cwd = work) {
  return run("git", args, {
    cwd,
    env: {
      HOME: work,
      HTTPS_PROXY: session.proxyUrl,
      GIT_SSL_CAINFO: stack.gatewayCaPath,
      GIT_TERMINAL_PROMPT: "0",
      GIT_CONFIG_NOSYSTEM: "1",
    },
  });
}

describe("git through the gateway", () => {
  it("clones a bound repository with the PAT injected as Basic x-access-token", async () => {
    const result = await sandboxGit(["clone", `${server.url}/octo-org/widgets.git`, "widgets"]);
    expect(result.stderr).not.toContain("fatal");
    expect(result.exitCode).toBe(0);
    expect(await readFile(join(work, "widgets", "README.md"), "utf8")).toBe("# widgets\n");
    expect(await readFile(join(work, "widgets", "src", "a.txt"), "utf8")).toBe("a\n");
    // The server refuses anything else with 401, so every request it answered carried these.
    expect(git.seenCredentials.length).toBeGreaterThanOrEqual(2);
    expect(new Set(git.seenCredentials)).toEqual(new Set([`x-access-token:${PAT}`]));

    // Nothing in the clone (remote URL, config, logs) holds the token.
    const remote = await sandboxGit(["remote", "get-url", "origin"], join(work, "widgets"));
    expect(remote.stdout.trim()).toBe(`${server.url}/octo-org/widgets.git`);
    const grep = await run("grep", ["-r", "-l", PAT, join(work, "widgets")]);
    expect(grep.exitCode).toBe(1);
  });

  it("refuses to clone a repository the binding does not name: 403 policy_denied", async () => {
    const seen = git.seenCredentials.length;
    const result = await sandboxGit([
      "clone",
      `${server.url}/octo-org/secret-plans.git`,
      "secret-plans",
    ]);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain("403");

    const refs = await curl([
      "--proxy",
      session.proxyUrl,
      "--cacert",
      stack.gatewayCaPath,
      `${server.url}/octo-org/secret-plans.git/info/refs?service=git-upload-pack`,
    ]);
    expect(refs.status).toBe(403);
    expect(errorCode(refs.body)).toBe("policy_denied");
    expect(git.seenCredentials.length).toBe(seen);
  });

  it("refuses a push when the binding grants read access only", async () => {
    const clone = join(work, "widgets");
    const bare = join(git.projectRoot, "octo-org", "widgets.git");
    const serverHead = () => run("git", ["--git-dir", bare, "rev-parse", "main"]);
    const before = (await serverHead()).stdout;
    expect(before).toMatch(/^[0-9a-f]{40}\n$/);
    const identity = ["-c", "user.name=Sandbox", "-c", "user.email=sandbox@keyway.invalid"];
    await sandboxGit([...identity, "commit", "--allow-empty", "-q", "-m", "change"], clone);
    // The ref advertisement (`info/refs`) is routed for fetches; `git-receive-pack` is not.
    const result = await sandboxGit(["push", "origin", "main"], clone);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain("403");
    expect((await serverHead()).stdout).toBe(before);
  });

  it("refuses a read-only binding's push discovery (info/refs?service=git-receive-pack) before any credential", async () => {
    const seen = git.seenCredentials.length;
    for (const query of ["service=git-receive-pack", "service=git%2Dreceive%2Dpack"]) {
      const refs = await curl([
        "--proxy",
        session.proxyUrl,
        "--cacert",
        stack.gatewayCaPath,
        `${server.url}/octo-org/widgets.git/info/refs?${query}`,
      ]);
      expect(refs.status, query).toBe(403);
      expect(errorCode(refs.body)).toBe("policy_denied");
    }
    // The server records the credentials of every request it receives: it saw none of these.
    expect(git.seenCredentials.length).toBe(seen);
  });

  it("limits the API to the bound repositories: another repository or a tool's update check is refused", async () => {
    const seen = git.seenCredentials.length;
    for (const path of [
      "/api/v3/repos/openai/codex/releases/latest",
      "/api/v3/repos/octo-org/secret-plans/contents/PLANS.md",
      "/api/v3/user",
    ]) {
      const response = await curl([
        "--proxy",
        session.proxyUrl,
        "--cacert",
        stack.gatewayCaPath,
        `${server.url}${path}`,
      ]);
      expect(response.status, path).toBe(403);
      expect(errorCode(response.body)).toBe("policy_denied");
    }
    expect(git.seenCredentials.length).toBe(seen);
  });

  it("keeps the PAT out of the gateway's output", () => {
    expect(stack.gatewayOutput()).toContain('"outcome":"forwarded"');
    expect(stack.gatewayOutput()).not.toContain(PAT);
    expect(stack.controlPlaneLogs.join("\n")).not.toContain(PAT);
  });
});
