import { randomBytes, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { createRequire } from "node:module";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { type RunningServer, startHttpServer } from "@keyway/test-harness";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Stack, startStack, type WorkerProcess } from "./support/stack";

/**
 * The web console in a real browser (Debian's chromium, driven by playwright-core; no browser is
 * downloaded) against the real stack: control plane, gateway, worker, PostgreSQL. Each step is
 * what a person does: click, type, read. Screenshots of the main pages go to docs/console/.
 */
const CHROMIUM = "/usr/bin/chromium";
const repo = fileURLToPath(new URL("../..", import.meta.url));
const screenshots = join(repo, "docs", "console");
const axeSource = await readFile(
  createRequire(import.meta.url).resolve("axe-core/axe.min.js"),
  "utf8",
);
const HOSTILE = `<script>window.__pwned=1</script>"><img src=x onerror="window.__pwned=2">`;

let stack: Stack;
let worker: WorkerProcess;
let browser: Browser;
let subscriber: RunningServer;
const received: string[] = [];
let orgToken: string;
let otherOrgConnectionId: string;
const webhookSecret = `whsec_${randomBytes(32).toString("base64")}`;

beforeAll(async () => {
  stack = await startStack("console", {
    env: { KEYWAY_WEBHOOKS__ALLOW_PRIVATE_SUBSCRIBERS: "true" },
  });
  worker = await stack.startWorker();
  subscriber = await startHttpServer((request: IncomingMessage, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => {
      body += chunk.toString("utf8");
    });
    request.on("end", () => {
      received.push(body);
      response.writeHead(204).end();
    });
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  await mkdir(screenshots, { recursive: true });

  // What is not the subject of these tests is set up through the API, as the CLI would.
  await stack.apiOk(stack.operatorToken, "POST", "/v1/operator/targets", {
    targetKey: "demo-api",
    variantId: "http-api",
    enabled: false,
    config: { baseUrl: "http://127.0.0.1:9/v1", webhook: { scheme: "standard-webhooks" } },
    secrets: { webhookSecret },
  });
  const other = (await stack.apiOk(stack.operatorToken, "POST", "/v1/operator/organizations", {
    name: "Other org",
  })) as { adminToken: { token: string } };
  const otherConnection = (await stack.apiOk(
    other.adminToken.token,
    "POST",
    "/v1/integration/connections",
    {
      targetKey: "openai",
      methodId: "api-key",
      displayName: "Theirs",
      secrets: { apiKey: "sk-x" },
    },
  )) as { id: string };
  otherOrgConnectionId = otherConnection.id;
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await subscriber?.close();
  await worker?.stop();
  await stack?.close();
});

async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("dialog", (dialog) => void dialog.accept());
  return { context, page };
}

async function signIn(page: Page, token: string): Promise<void> {
  await page.goto(`${stack.apiUrl}/console/sign-in`);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((url) => !url.pathname.endsWith("/sign-in"));
}

async function shoot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
}

/** axe-core in the page (evaluated through the DevTools protocol, which the CSP does not govern). */
async function seriousViolations(page: Page): Promise<string[]> {
  await page.evaluate(`${axeSource};0`);
  const violations = (await page.evaluate(
    "axe.run().then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target) })))",
  )) as { id: string; impact: string | null; nodes: unknown[] }[];
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} ${JSON.stringify(v.nodes)}`);
}

async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe("the web console in a browser", () => {
  it("lets the operator enable a target and create an organization with a hostile name", async () => {
    const { context, page } = await newPage();
    await signIn(page, stack.operatorToken);
    expect(new URL(page.url()).pathname).toBe("/console/operator/targets");
    const row = page.getByRole("row", { name: /demo-api/ });
    expect(await row.textContent()).toContain("disabled");
    await page.getByRole("button", { name: "Enable demo-api" }).click();
    await page.waitForURL(/done=enabled/);
    const target = (await stack.apiOk(
      stack.operatorToken,
      "GET",
      "/v1/operator/targets/demo-api",
    )) as {
      enabled: boolean;
    };
    expect(target.enabled).toBe(true);
    await shoot(page, "operator-targets");
    expect(await seriousViolations(page)).toEqual([]);

    // The target's config form, generated from the definition's JSON Schema.
    await page.goto(`${stack.apiUrl}/console/operator/targets/demo-api`);
    expect(
      await page
        .getByLabel(/baseUrl|Base URL/i)
        .first()
        .inputValue(),
    ).toBe("http://127.0.0.1:9/v1");
    await shoot(page, "operator-target");
    expect(await seriousViolations(page)).toEqual([]);

    await page.goto(`${stack.apiUrl}/console/operator/organizations`);
    await page.getByLabel("Name (required)").fill(HOSTILE);
    await page.getByRole("button", { name: "Create organization" }).click();
    orgToken = (await page.locator("#admin-token").textContent())?.trim() ?? "";
    expect(orgToken).toMatch(/^kw_org_/);
    expect(await page.getByRole("cell", { name: HOSTILE }).count()).toBeGreaterThan(0);
    expect(await page.evaluate("window.__pwned")).toBeUndefined();
    await context.close();
  });

  it("lets an organization user connect an API key, build versions, read a plan and a diff", async () => {
    const { context, page } = await newPage();
    await signIn(page, orgToken);
    // The organization's hostile name is shown in the header, as text.
    expect(await page.locator("header .who").textContent()).toBe(HOSTILE);
    expect(await page.evaluate("window.__pwned")).toBeUndefined();

    await page
      .getByRole("row", { name: /demo-api/ })
      .getByRole("link", { name: /^API key/ })
      .click();
    await page.getByLabel("Display name (required)").fill("Demo API");
    await page.getByLabel("apiKey (write-only)").fill("demo-key-123");
    await shoot(page, "connection-form");
    expect(await seriousViolations(page)).toEqual([]);
    await page.getByRole("button", { name: "Create connection" }).click();
    await page.waitForURL(/done=created/);
    expect(await page.locator("dd .status-active").textContent()).toBe("active");

    // An OpenAI connection through its generated form as well.
    await page.goto(`${stack.apiUrl}/console/connections`);
    await page
      .getByRole("row", { name: /openai/ })
      .getByRole("link", { name: /^API key/ })
      .click();
    await page.getByLabel("Display name (required)").fill(HOSTILE);
    await page.getByLabel("apiKey (write-only)").fill("sk-your-key");
    await page.getByRole("button", { name: "Create connection" }).click();
    await page.waitForURL(/done=created/);
    await page.goto(`${stack.apiUrl}/console/connections`);
    await shoot(page, "connections");
    expect(await seriousViolations(page)).toEqual([]);
    expect(await page.evaluate("window.__pwned")).toBeUndefined();

    // A profile; version 1 binds the demo API.
    await page.goto(`${stack.apiUrl}/console/profiles`);
    await page.getByLabel("Name (required)").fill("coding-agent");
    await page.getByRole("button", { name: "Create profile" }).click();
    await page.getByRole("link", { name: "New version" }).click();
    await page.getByLabel("Connection").selectOption({ label: "Demo API (demo-api)" });
    await page.getByRole("button", { name: "Add binding" }).click();
    await page.getByRole("button", { name: "Create version" }).click();
    await page.waitForURL(/versions\/1\/plan/);
    expect(await page.getByRole("cell", { name: "127.0.0.1:9" }).count()).toBe(1);

    // Version 2: the same connection twice conflicts; the error is shown at the second binding.
    await page.getByRole("link", { name: "Back to the profile" }).click();
    await page.getByRole("link", { name: "New version" }).click();
    await page.getByLabel("Connection").selectOption({ label: "Demo API (demo-api)" });
    await page.getByRole("button", { name: "Add binding" }).click();
    await page.getByRole("button", { name: "Create version" }).click();
    const second = page.getByRole("group", { name: /Binding 2/ });
    await second.locator(".issue").waitFor();
    expect(await second.getAttribute("aria-invalid")).toBe("true");
    expect(await second.locator(".issue").textContent()).toMatch(/\S/);
    await shoot(page, "version-editor-conflict");
    expect(await seriousViolations(page)).toEqual([]);

    // Without the duplicate, and with an OpenAI agent binding instead: version 2.
    await page.getByRole("button", { name: "Remove binding 2" }).click();
    await page.getByLabel("Connection").selectOption({ label: `${HOSTILE} (openai)` });
    await page.getByRole("button", { name: "Add binding" }).click();
    await page
      .getByRole("group", { name: /Binding 2/ })
      .getByLabel(/model/i)
      .fill("gpt-6.2-sol");
    await page.getByRole("button", { name: "Create version" }).click();
    await page.waitForURL(/versions\/2\/plan/);
    await shoot(page, "plan");
    expect(await seriousViolations(page)).toEqual([]);
    expect(await page.getByRole("heading", { name: "Files" }).count()).toBe(1);

    await page.getByRole("link", { name: "Back to the profile" }).click();
    await page.getByLabel("From version").selectOption("1");
    await page.getByLabel("To version").selectOption("2");
    await page.getByRole("button", { name: "Compare" }).click();
    await page.waitForURL(/diff\?from=1&to=2/);
    const added = page.locator(".diff section").nth(1).locator("li.added");
    expect(await added.count()).toBeGreaterThan(0);
    await shoot(page, "diff");
    expect(await seriousViolations(page)).toEqual([]);
    await context.close();
  });

  it("starts a session, shows what to copy, and revokes it", async () => {
    const { context, page } = await newPage();
    await signIn(page, orgToken);
    await page.goto(`${stack.apiUrl}/console/sessions`);
    await page.getByRole("button", { name: "Start session" }).click();
    const command = await page.locator("#run-command").textContent();
    expect(command).toMatch(/^keyway sandbox run --profile \S+ --version 2 -- /);
    expect(await page.locator("#session-env").textContent()).toContain("HTTPS_PROXY");
    await shoot(page, "sessions");
    expect(await seriousViolations(page)).toEqual([]);
    await page
      .getByRole("button", { name: /^Revoke / })
      .first()
      .click();
    await page.waitForURL(/done=revoked/);
    expect(await page.locator("td .status-revoked").count()).toBe(1);
    await context.close();
  });

  it("subscribes to webhooks and replays a delivery", async () => {
    const { context, page } = await newPage();
    await signIn(page, orgToken);
    await page.goto(`${stack.apiUrl}/console/webhooks`);
    await page.getByLabel("Endpoint URL (required)").fill(`${subscriber.url}/hooks`);
    await page.getByLabel("Event types (required)").fill("http-api.*");
    await page.getByRole("button", { name: "Subscribe" }).click();
    expect(await page.locator("#webhook-secret").textContent()).toMatch(/^whsec_/);

    const id = `msg_${randomUUID().replaceAll("-", "")}`;
    const timestamp = new Date();
    const body = JSON.stringify({
      type: "invoice.paid",
      timestamp: timestamp.toISOString(),
      data: { id: "in_1" },
    });
    const sent = await fetch(`${stack.apiUrl}/p/integration/webhooks/demo-api`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "webhook-id": id,
        "webhook-timestamp": String(Math.floor(timestamp.getTime() / 1000)),
        "webhook-signature": new Webhook(webhookSecret).sign(id, timestamp, body),
      },
      body,
    });
    expect(sent.status).toBe(202);
    await eventually("the first delivery", async () => received.length >= 1);

    await page.goto(`${stack.apiUrl}/console/webhooks`);
    await page.getByRole("link", { name: "http-api.invoice.paid" }).click();
    await page.getByRole("button", { name: /^Replay delivery/ }).click();
    await page.waitForURL(/done=replayed/);
    await eventually("the replayed delivery", async () => received.length >= 2);
    await page.reload();
    await shoot(page, "webhook-event");
    expect(await seriousViolations(page)).toEqual([]);
    await context.close();
  });

  it("shows the audit log with the chain verified", async () => {
    const { context, page } = await newPage();
    await signIn(page, stack.operatorToken);
    await page.goto(`${stack.apiUrl}/console/audit`);
    expect(await page.getByRole("status").first().textContent()).toMatch(/^Chain verified/);
    // The operator reads the deployment's entries: organizations' and deployment-wide ones.
    expect(await page.getByRole("cell", { name: "organization.created" }).count()).toBeGreaterThan(
      0,
    );
    await shoot(page, "audit");
    expect(await seriousViolations(page)).toEqual([]);
    await context.close();
  });
});

describe("console security in the browser", () => {
  it("sends a strict Content-Security-Policy that forbids inline script and framing", async () => {
    const { context, page } = await newPage();
    const response = await page.goto(`${stack.apiUrl}/console/sign-in`);
    const csp = response?.headers()["content-security-policy"] ?? "";
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).toContain("frame-ancestors 'none'");
    // The browser enforces it: an injected inline script does not run.
    await page.evaluate(
      'const s = document.createElement("script"); s.textContent = "window.__inline = 1"; document.body.append(s)',
    );
    expect(await page.evaluate("window.__inline")).toBeUndefined();
    await context.close();
  });

  it("refuses a form posted without its CSRF token", async () => {
    const { context, page } = await newPage();
    await signIn(page, orgToken);
    const before = (await stack.apiOk(orgToken, "GET", "/v1/sandbox-profiles")) as {
      items: unknown[];
    };
    const status = await page.evaluate(
      'fetch("/console/profiles", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "name=forged" }).then((r) => r.status)',
    );
    expect(status).toBe(403);
    const after = (await stack.apiOk(orgToken, "GET", "/v1/sandbox-profiles")) as {
      items: unknown[];
    };
    expect(after.items.length).toBe(before.items.length);
    await context.close();
  });

  it("shows 404 for another organization's id typed into the URL", async () => {
    const { context, page } = await newPage();
    await signIn(page, orgToken);
    const response = await page.goto(`${stack.apiUrl}/console/connections/${otherOrgConnectionId}`);
    expect(response?.status()).toBe(404);
    expect(await page.getByRole("heading", { level: 1 }).textContent()).toBe("Not found");
    expect(await page.content()).not.toContain("Theirs");
    await context.close();
  });

  it("signs out", async () => {
    const { context, page } = await newPage();
    await signIn(page, orgToken);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(/\/console\/sign-in/);
    await page.goto(`${stack.apiUrl}/console/connections`);
    expect(new URL(page.url()).pathname).toBe("/console/sign-in");
    await context.close();
  });
});

// Unused import guard for environments without chromium: the suite needs it (CI installs it).
if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
