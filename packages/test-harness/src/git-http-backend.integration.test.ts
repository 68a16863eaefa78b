import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGitHttpBackend, type GitHttpBackend } from "./git-http-backend";
import { type RunningServer, startHttpServer } from "./http-servers";

/** Runs git without blocking the event loop (the server under test lives in this process). */
function git(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      "git",
      args,
      { env: { ...process.env, GIT_TERMINAL_PROMPT: "0" } },
      (error, _stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stderr });
      },
    );
  });
}

let backend: GitHttpBackend;
let server: RunningServer;
let work: string;

beforeAll(async () => {
  backend = await createGitHttpBackend({ username: "x-access-token", password: "ghs_test_token" });
  backend.createRepository("octo-org/widgets", { "README.md": "# widgets\n" });
  server = await startHttpServer(backend.handler);
  work = await mkdtemp(join(tmpdir(), "keyway-git-clone-"));
});

afterAll(async () => {
  await server.close();
  await backend.cleanup();
  await rm(work, { recursive: true, force: true });
});

describe("git http-backend test server", () => {
  it("serves a clone to a client with the expected Basic credentials", async () => {
    const url = `${server.url.replace("http://", "http://x-access-token:ghs_test_token@")}/octo-org/widgets.git`;
    const result = await git(["clone", "-q", url, join(work, "widgets")]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(await readFile(join(work, "widgets", "README.md"), "utf8")).toBe("# widgets\n");
    expect(backend.seenCredentials).toContain("x-access-token:ghs_test_token");
  });

  it("refuses a clone with other credentials", async () => {
    const url = `${server.url.replace("http://", "http://x-access-token:wrong@")}/octo-org/widgets.git`;
    const result = await git(["clone", "-q", url, join(work, "denied")]);
    expect(result.code).not.toBe(0);
  });
});
