import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Stack, startStack } from "./support/stack";

/**
 * The console's "Connect" button through a real OAuth2 authorization-code flow (issue 11's
 * `POST /v1/integration/connections/oauth2/start` → `{authorizationUrl, expiresAt}`, the provider's
 * consent, the API's callback redirecting to `redirectAfter`). The route is built on another
 * branch: until it is on main the API answers 404 `no such route` and this test is skipped (the
 * probe below says so). Once it is, `oauthTarget` must start issue 11's local authorization
 * server and bind it as a target; it fails loudly until then rather than pass without a flow.
 */
let stack: Stack;
let browser: Browser | undefined;
let routeExists = false;

beforeAll(async () => {
  stack = await startStack("console-oauth");
  const probe = await stack.api(
    stack.operatorToken,
    "POST",
    "/v1/integration/connections/oauth2/start",
    {},
  );
  const code = (probe.body as { error?: { code?: string; message?: string } } | undefined)?.error;
  routeExists = !(probe.status === 404 && code?.message === "no such route");
  if (routeExists) {
    browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: ["--no-sandbox"],
    });
  }
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await stack?.close();
});

/** The target key of an OAuth2 (authorization code) target bound to a local authorization server. */
async function oauthTarget(
  _stack: Stack,
): Promise<{ targetKey: string; consent(page: import("playwright-core").Page): Promise<void> }> {
  throw new Error(
    "wire issue 11's local authorization server here: start it, create the http-api target with its oauth2 settings, and complete its consent page",
  );
}

describe("connecting through OAuth2 in the browser", () => {
  it("comes back to the console with an active connection", async (context) => {
    if (!routeExists) {
      context.skip(
        "POST /v1/integration/connections/oauth2/start is not on this branch yet (issue 11)",
      );
      return;
    }
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
