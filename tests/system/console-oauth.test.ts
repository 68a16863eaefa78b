import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type StartedAuthorizationServer,
  startAuthorizationServer,
} from "../../scripts/demo-authorization-server.mjs";
import { type Stack, startStack } from "./support/stack";

/**
 * The console's "Connect" button through a real OAuth2 authorization-code flow (issue 11's
 * `POST /v1/integration/connections/oauth2/start` → `{authorizationUrl, expiresAt}`, the provider's
 * consent, the API's callback redirecting to `redirectAfter`), against the local authorization
 * server of the README walkthrough (oidc-provider) with its interactive login and consent pages,
 * filled in by the browser.
 */
let stack: Stack;
let browser: Browser | undefined;
let as: StartedAuthorizationServer | undefined;

beforeAll(async () => {
  stack = await startStack("console-oauth");
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await stack?.close();
  await as?.close();
});

/**
 * An OAuth2 (authorization code) http-api target bound to a local authorization server whose
 * login and consent pages are real HTML forms (oidc-provider's development interactions).
 */
async function oauthTarget(
  stack: Stack,
): Promise<{ targetKey: string; consent(page: Page): Promise<void> }> {
  as = await startAuthorizationServer({
    quiet: true,
    clients: [
      {
        clientId: "keyway-console",
        clientSecret: "console-client-secret",
        redirectUris: [`${stack.apiUrl}/v1/integration/connections/oauth2/callback`],
      },
    ],
  });
  const targetKey = "console-oauth";
  await stack.apiOk(stack.operatorToken, "POST", "/v1/operator/targets", {
    targetKey,
    variantId: "http-api",
    config: {
      baseUrl: `${as.issuer}/api`,
      oauth2: {
        authorizationUrl: as.authorizationUrl,
        tokenUrl: as.tokenUrl,
        clientId: "keyway-console",
        scopes: ["api:read"],
      },
    },
    secrets: { clientSecret: "console-client-secret" },
  });
  return {
    targetKey,
    async consent(page) {
      // The authorization server's own pages: sign in as any user, then approve.
      await page.locator('input[name="login"]').fill("alice");
      await page.locator('input[name="password"]').fill("any");
      await page.locator('button[type="submit"]').click();
      await page.locator('input[name="prompt"][value="consent"]').waitFor({ state: "attached" });
      await page.locator('button[type="submit"]').click();
    },
  };
}

describe("connecting through OAuth2 in the browser", () => {
  it("comes back to the console with an active connection", async () => {
    const { targetKey, consent } = await oauthTarget(stack);
    const org = (await stack.apiOk(stack.operatorToken, "POST", "/v1/operator/organizations", {
      name: "OAuth org",
    })) as { adminToken: { token: string } };
    const page = await (await (browser as Browser).newContext()).newPage();
    await page.goto(`${stack.apiUrl}/console/sign-in`);
    await page.getByLabel("API token").fill(org.adminToken.token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.goto(`${stack.apiUrl}/console/connections`);
    await page
      .getByRole("row", { name: new RegExp(targetKey) })
      .getByRole("button", { name: /^Connect/ })
      .click();
    await consent(page);
    await page.waitForURL(/\/console\/connections\?done=connected/);
    const connections = (await stack.apiOk(
      org.adminToken.token,
      "GET",
      "/v1/integration/connections",
    )) as {
      items: { targetKey: string; status: string }[];
    };
    expect(connections.items.filter((c) => c.targetKey === targetKey).map((c) => c.status)).toEqual(
      ["active"],
    );
  });
});
