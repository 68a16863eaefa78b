import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RequestHandler } from "./http-servers";

/**
 * A git smart-HTTP server for tests: bare repositories under a temporary project root, served by
 * git's own `git http-backend` CGI program. Every request must carry HTTP Basic credentials equal
 * to `expected`, which is how a test proves the gateway injected them.
 */
export interface GitHttpBackend {
  projectRoot: string;
  /** Creates `owner/name.git` with one commit holding `files`. */
  createRepository(fullName: string, files: Record<string, string>): void;
  handler: RequestHandler;
  /** Basic credentials seen on each request, in order (`username:password`). */
  seenCredentials: string[];
  cleanup(): Promise<void>;
}

const GIT_BACKEND = "/usr/lib/git-core/git-http-backend";

export async function createGitHttpBackend(expected: {
  username: string;
  password: string;
}): Promise<GitHttpBackend> {
  const projectRoot = await mkdtemp(join(tmpdir(), "keyway-git-"));
  const seenCredentials: string[] = [];
  const expectedHeader = `Basic ${Buffer.from(`${expected.username}:${expected.password}`).toString("base64")}`;

  const git = (args: string[], cwd: string) => {
    const result = spawnSync("git", args, {
      cwd,
      encoding: "utf8",
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: projectRoot,
        GIT_CONFIG_NOSYSTEM: "1",
      },
    });
    if (result.status !== 0) throw new Error(`git ${args.join(" ")} failed: ${result.stderr}`);
  };

  return {
    projectRoot,
    seenCredentials,
    createRepository(fullName, files) {
      const bare = join(projectRoot, `${fullName}.git`);
      const work = join(projectRoot, ".work", fullName);
      git(["init", "-q", "--bare", "-b", "main", bare], projectRoot);
      git(["init", "-q", "-b", "main", work], projectRoot);
      for (const [path, content] of Object.entries(files)) {
        spawnSync("sh", [
          "-c",
          'mkdir -p "$(dirname "$1")" && printf %s "$2" > "$1"',
          "sh",
          join(work, path),
          content,
        ]);
      }
      git(["add", "-A"], work);
      git(
        [
          "-c",
          "user.name=Keyway Test",
          "-c",
          "user.email=test@keyway.invalid",
          "commit",
          "-q",
          "-m",
          "initial",
        ],
        work,
      );
      git(["push", "-q", bare, "main"], work);
    },
    handler: async (request, response) => {
      const authorization = request.headers.authorization ?? "";
      if (authorization.startsWith("Basic ")) {
        seenCredentials.push(Buffer.from(authorization.slice(6), "base64").toString("utf8"));
      }
      if (authorization !== expectedHeader) {
        response.writeHead(401, { "www-authenticate": 'Basic realm="git"' });
        response.end("unauthorized\n");
        return;
      }
      const url = new URL(request.url ?? "/", "http://git.invalid");
      const gitProtocol = request.headers["git-protocol"];
      const cgi = spawn(GIT_BACKEND, [], {
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          GIT_PROJECT_ROOT: projectRoot,
          GIT_HTTP_EXPORT_ALL: "1",
          REQUEST_METHOD: request.method ?? "GET",
          PATH_INFO: decodeURIComponent(url.pathname),
          QUERY_STRING: url.search.slice(1),
          CONTENT_TYPE: request.headers["content-type"] ?? "",
          REMOTE_USER: expected.username,
          REMOTE_ADDR: "127.0.0.1",
          ...(request.headers["content-encoding"]
            ? { HTTP_CONTENT_ENCODING: request.headers["content-encoding"] }
            : {}),
          ...(typeof gitProtocol === "string" ? { GIT_PROTOCOL: gitProtocol } : {}),
        },
      });
      request.pipe(cgi.stdin);
      // CGI output: headers, a blank line, then the body.
      let head = Buffer.alloc(0);
      let headersDone = false;
      cgi.stdout.on("data", (chunk: Buffer) => {
        if (headersDone) {
          response.write(chunk);
          return;
        }
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf("\r\n\r\n") >= 0 ? head.indexOf("\r\n\r\n") : head.indexOf("\n\n");
        if (end < 0) return;
        const separator = head[end] === 13 ? 4 : 2;
        const lines = head.subarray(0, end).toString("utf8").split(/\r?\n/);
        let status = 200;
        const headers: Record<string, string> = {};
        for (const line of lines) {
          const colon = line.indexOf(":");
          if (colon < 0) continue;
          const name = line.slice(0, colon).trim();
          const value = line.slice(colon + 1).trim();
          if (name.toLowerCase() === "status") status = Number.parseInt(value, 10);
          else headers[name] = value;
        }
        response.writeHead(status, headers);
        headersDone = true;
        const rest = head.subarray(end + separator);
        if (rest.length > 0) response.write(rest);
      });
      await new Promise<void>((resolve) => cgi.on("close", () => resolve()));
      if (!headersDone) response.writeHead(502);
      response.end();
    },
    cleanup: () => rm(projectRoot, { recursive: true, force: true }),
  };
}
