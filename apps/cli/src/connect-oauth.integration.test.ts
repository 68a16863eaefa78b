import { type BrowsedPage, browseAuthorization } from "@keyway/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type StartedAuthorizationServer,
  startAuthorizationServer,
} from "../../../scripts/demo-authorization-server.mjs";
import {
  type CliTestControlPlane,
  connectionsOf,
  runKeyway,
  startCliTestControlPlane,
} from "./testing/control-plane";

/**
 * `keyway connect oauth` against the real start route and callback: the CLI prints (or opens) the
 * authorization URL, a browser completes the flow at a real authorization server on loopback
 * (`oidc-provider`, whose sign-in and consent pages `browseAuthorization` fills in, as
 * tests/system/oauth2-authorization-code.test.ts does), and the CLI, polling the API, reports the
 * connection once it is active. The CLI's wait between polls is where the browser acts: the
 * person at the terminal uses the URL while the CLI waits.
 */

const CLIENT_SECRET = "keyway-cli-oauth-client-secret";

let api: CliTestControlPlane;
let as: StartedAuthorizationServer;
let admin: string;

beforeAll(async () => {
  api = await startCliTestControlPlane("cli-connect-oauth");
  as = await startAuthorizationServer({
    quiet: true,
    clients: [
      {
        clientId: "keyway",
        clientSecret: CLIENT_SECRET,
        redirectUris: [`${api.url}/v1/integration/connections/oauth2/callback`],
      },
    ],
  });
  await api.api(api.operatorToken, "POST", "/v1/operator/targets", {
    targetKey: "local-oauth",
    variantId: "http-api",
    config: {
      baseUrl: `${as.issuer}/api`,
      oauth2: {
        authorizationUrl: as.authorizationUrl,
        tokenUrl: as.tokenUrl,
        clientId: "keyway",
        scopes: ["api:read"],
      },
    },
    secrets: { clientSecret: CLIENT_SECRET },
  });
  admin = await api.createOrganization("OAuth Org");
}, 120_000);

afterAll(async () => {
  await as?.close();
  await api?.close();
});

const env = () => ({ KEYWAY_URL: api.url, KEYWAY_TOKEN: admin });

describe("keyway connect oauth against the real routes", () => {
  it("connect oauth --open: the opened URL leads through sign-in and consent; the CLI reports the active connection", async () => {
    let opened: string | undefined;
    let browsing: Promise<BrowsedPage> | undefined;
    const result = await runKeyway(
      [
        "connect",
        "oauth",
        "--target",
        "local-oauth",
        "--method",
        "oauth2",
        "--name",
        "Local OAuth API",
        "--open",
        "--json",
      ],
      {
        env: env(),
        openUrl: async (url) => {
          opened = url;
          browsing = browseAuthorization(url);
          return true;
        },
        sleep: async () => {
          await browsing;
        },
      },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(opened?.startsWith(as.authorizationUrl)).toBe(true);
    expect(result.stderr).toContain(`Open this URL in a browser to continue:\n\n  ${opened}\n`);
    const page = await browsing;
    expect(page?.url.startsWith(`${api.url}/v1/integration/connections/oauth2/callback`)).toBe(
      true,
    );
    expect(page?.text).toContain("Connected");
    const connection = JSON.parse(result.stdout);
    expect(connection).toMatchObject({
      targetKey: "local-oauth",
      methodId: "oauth2",
      displayName: "Local OAuth API",
      status: "active",
    });
    expect((await connectionsOf(api, admin, "local-oauth")).map((c) => c.id)).toEqual([
      connection.id,
    ]);
    expect(result.stdout + result.stderr).not.toContain(CLIENT_SECRET);
  });

  it("connect oauth gives up with exit 4 when nobody completes the flow", async () => {
    const now = { ms: Date.parse("2026-12-06T00:00:00Z") };
    const result = await runKeyway(
      [
        "connect",
        "oauth",
        "--target",
        "local-oauth",
        "--method",
        "oauth2",
        "--name",
        "Abandoned",
        "--timeout",
        "5",
      ],
      {
        env: env(),
        // The CLI's own clock: each wait moves it on, so the deadline passes without waiting.
        clock: { now: () => new Date(now.ms) },
        sleep: async (ms) => {
          now.ms += ms;
        },
      },
    );
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(/\nerror: timeout: no active local-oauth connection after 5s\n$/);
    expect((await connectionsOf(api, admin, "local-oauth")).map((c) => c.displayName)).toEqual([
      "Local OAuth API",
    ]);
  });
});
