import { generateKeyPairSync } from "node:crypto";
import {
  createGitHubAppStandIn,
  type GitHubAppStandIn,
} from "@keyway/integrations-definitions/testing/github-app-stand-in";
import { setupServer } from "msw/node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CliTestControlPlane,
  connectionsOf,
  runKeyway,
  startCliTestControlPlane,
} from "./testing/control-plane";

/**
 * `keyway connect github-app` against the real start route and callback, with msw standing in
 * for GitHub (`github-app-stand-in.ts`; GitHub cannot be reached from here) as the API's GitHub
 * App tests do: the CLI prints the install URL, the person installs the app, GitHub sends the
 * browser back to Keyway's callback, and the CLI, polling the API, reports the active connection.
 * The CLI's wait between polls is where the person acts.
 */

const APP_CLIENT_ID = "Iv23liKeywayCliTest";
const APP_CLIENT_SECRET = "gh-app-cli-client-secret-0123456789";
const { privateKey: appKeyPem, publicKey: appPublicPem } = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  privateKeyEncoding: { type: "pkcs1", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" },
});

const msw = setupServer();
let api: CliTestControlPlane;
let github: GitHubAppStandIn;
let admin: string;

beforeAll(async () => {
  // Before the control plane starts: it keeps the fetch it finds (see testing/control-plane.ts).
  msw.listen({ onUnhandledRequest: "bypass" });
  api = await startCliTestControlPlane("cli-connect-github-app");
  github = createGitHubAppStandIn({
    webBaseUrl: "https://github.com",
    apiBaseUrl: "https://api.github.com",
    appSlug: "keyway-cli-test",
    edition: "cloud",
    clientId: APP_CLIENT_ID,
    clientSecret: APP_CLIENT_SECRET,
    publicKeyPem: appPublicPem,
    issuer: APP_CLIENT_ID,
    callbackUrl: `${api.url}/p/integration/github-app/gh-app/callback`,
    now: () => new Date(),
  });
  msw.use(...github.handlers);
  await api.api(api.operatorToken, "POST", "/v1/operator/targets", {
    targetKey: "gh-app",
    variantId: "github-cloud",
    config: { appSlug: "keyway-cli-test" },
    secrets: {
      clientId: APP_CLIENT_ID,
      clientSecret: APP_CLIENT_SECRET,
      appPrivateKeyPem: appKeyPem,
    },
  });
  admin = await api.createOrganization("GitHub Org");
}, 120_000);

afterAll(async () => {
  msw.close();
  await api?.close();
});

const env = () => ({ KEYWAY_URL: api.url, KEYWAY_TOKEN: admin });

/** The URL the CLI printed for the person at the terminal. */
function printedUrl(stderr: readonly string[]): string {
  const url = /Open this URL in a browser to continue:\s+(\S+)/.exec(stderr.join(""))?.[1];
  if (url === undefined) throw new Error(`no URL printed yet: ${stderr.join("")}`);
  return url;
}

describe("keyway connect github-app against the real routes", () => {
  it("connect github-app: the printed install URL, GitHub's redirect back, then the active connection", async () => {
    const stderr: string[] = [];
    let callback: Response | undefined;
    const result = await runKeyway(
      ["connect", "github-app", "--target", "gh-app", "--name", "Acme bots", "--json"],
      {
        env: env(),
        sleep: async () => {
          if (callback) return;
          // The person opens the printed URL and installs the app; GitHub sends the browser back.
          const redirect = github.install(printedUrl(stderr), { user: "octocat", account: "acme" });
          callback = await fetch(redirect, { headers: { accept: "text/html" } });
        },
      },
      { stdout: [], stderr },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(printedUrl(stderr)).toMatch(
      /^https:\/\/github\.com\/apps\/keyway-cli-test\/installations\/new\?state=/,
    );
    expect(callback?.status).toBe(200);
    expect(await callback?.text()).toContain("GitHub App connected");
    const connection = JSON.parse(result.stdout);
    expect(connection).toMatchObject({
      targetKey: "gh-app",
      displayName: "Acme bots",
      methodKind: "github-app-installation",
      status: "active",
    });
    expect((await connectionsOf(api, admin, "gh-app")).map((c) => c.id)).toEqual([connection.id]);
  });

  it("connect github-app again for an installation already connected: ends with that connection", async () => {
    const [connected] = await connectionsOf(api, admin, "gh-app");
    // The installation the first test connected (its id is the connection's external subject).
    const installationId = Number(connected?.externalSubjectId);
    expect(github.installation(installationId)?.account).toBe("acme");
    const stderr: string[] = [];
    let callback: Response | undefined;
    const result = await runKeyway(
      [
        "connect",
        "github-app",
        "--target",
        "gh-app",
        "--name",
        "Acme again",
        "--json",
        "--timeout",
        "30",
      ],
      {
        env: env(),
        sleep: async () => {
          if (callback) return;
          const redirect = github.install(printedUrl(stderr), { user: "octocat", installationId });
          callback = await fetch(redirect, { headers: { accept: "text/html" } });
        },
      },
      { stdout: [], stderr },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(callback?.status).toBe(200);
    // The same connection, confirmed: no second one for the same installation.
    expect(JSON.parse(result.stdout)).toMatchObject({ id: connected?.id, status: "active" });
    expect((await connectionsOf(api, admin, "gh-app")).map((c) => c.id)).toEqual([connected?.id]);
  });
});
