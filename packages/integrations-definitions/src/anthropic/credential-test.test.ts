import { HttpResponse, http } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { anthropicDefinition } from "./definition";
import { anthropicTargetConfigSchema } from "./target-config-schema";

const API_KEY = "sk-ant-api03-keyway-credential-test-0123456789abcdefghijklmnop";
const server = setupServer();

beforeAll(() => server.listen({ onUnhandledRequest: "error" }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

function runTest(config: unknown = {}) {
  const test = anthropicDefinition.credentialTest;
  if (!test) throw new Error("anthropic has no credential test");
  return test.test({
    target: {
      id: "tgt_anthropic",
      targetKey: "anthropic",
      config: anthropicTargetConfigSchema.parse(config),
    },
    connection: { id: "conn_anthropic", methodId: "api-key", methodKind: "api-key", config: {} },
    credential: API_KEY,
    fetch: globalThis.fetch,
  });
}

describe("anthropic credential test", () => {
  it("lists models with x-api-key and anthropic-version and reports success on 200", async () => {
    const seen: Record<string, string | null>[] = [];
    server.use(
      http.get("https://api.anthropic.com/v1/models", ({ request }) => {
        seen.push({
          url: request.url,
          apiKey: request.headers.get("x-api-key"),
          version: request.headers.get("anthropic-version"),
          authorization: request.headers.get("authorization"),
        });
        return HttpResponse.json({
          data: [{ id: "claude-sonnet-5-5", type: "model" }],
          has_more: false,
        });
      }),
    );
    await expect(runTest()).resolves.toEqual({
      ok: true,
      message: "Anthropic accepted the API key",
    });
    expect(seen).toEqual([
      {
        url: "https://api.anthropic.com/v1/models",
        apiKey: API_KEY,
        version: "2023-06-01",
        authorization: null,
      },
    ]);
  });

  it("reports a rejected key on 401 with Anthropic's error type", async () => {
    server.use(
      http.get("https://api.anthropic.com/v1/models", () =>
        HttpResponse.json(
          { type: "error", error: { type: "authentication_error", message: "invalid x-api-key" } },
          { status: 401 },
        ),
      ),
    );
    await expect(runTest()).resolves.toEqual({
      ok: false,
      message: "Anthropic rejected the API key (HTTP 401, authentication_error)",
    });
  });

  it("reports other failures with their status and type", async () => {
    server.use(
      http.get("https://api.anthropic.com/v1/models", () =>
        HttpResponse.json(
          { type: "error", error: { type: "overloaded_error", message: "Overloaded" } },
          { status: 529 },
        ),
      ),
    );
    await expect(runTest()).resolves.toEqual({
      ok: false,
      message: "Anthropic answered HTTP 529, overloaded_error",
    });
  });

  it("reports an unreachable API without throwing", async () => {
    server.use(http.get("https://api.anthropic.com/v1/models", () => HttpResponse.error()));
    await expect(runTest()).resolves.toEqual({
      ok: false,
      message: "could not reach the Anthropic API",
    });
  });

  it("calls the configured API base URL", async () => {
    const seen: string[] = [];
    server.use(
      http.get("https://llm.corp.example/anthropic/v1/models", ({ request }) => {
        seen.push(request.url);
        return HttpResponse.json({ data: [], has_more: false });
      }),
    );
    await expect(
      runTest({ apiBaseUrl: "https://llm.corp.example/anthropic" }),
    ).resolves.toMatchObject({ ok: true });
    expect(seen).toEqual(["https://llm.corp.example/anthropic/v1/models"]);
  });
});
