import { HttpResponse, http } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { openaiDefinition } from "./definition";
import { openaiTargetConfigSchema } from "./target-config-schema";

const API_KEY = "sk-proj-keyway-credential-test-abcdefghijklmnopqrstuvwxyz0123";
const server = setupServer();

beforeAll(() => server.listen({ onUnhandledRequest: "error" }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

function runTest(config: unknown = {}) {
  const test = openaiDefinition.credentialTest;
  if (!test) throw new Error("openai has no credential test");
  return test.test({
    target: {
      id: "tgt_openai",
      targetKey: "openai",
      config: openaiTargetConfigSchema.parse(config),
    },
    connection: { id: "conn_openai", methodId: "api-key", methodKind: "api-key", config: {} },
    credential: API_KEY,
    fetch: globalThis.fetch,
  });
}

describe("openai credential test", () => {
  it("lists models with the key as a bearer token and reports success on 200", async () => {
    const seen: { url: string; authorization: string | null }[] = [];
    server.use(
      http.get("https://api.openai.com/v1/models", ({ request }) => {
        seen.push({ url: request.url, authorization: request.headers.get("authorization") });
        return HttpResponse.json({
          object: "list",
          data: [{ id: "gpt-6.2-sol", object: "model" }],
        });
      }),
    );
    await expect(runTest()).resolves.toEqual({ ok: true, message: "OpenAI accepted the API key" });
    expect(seen).toEqual([
      { url: "https://api.openai.com/v1/models", authorization: `Bearer ${API_KEY}` },
    ]);
  });

  it("reports a rejected key on 401 with OpenAI's error code but never its message", async () => {
    server.use(
      http.get("https://api.openai.com/v1/models", () =>
        HttpResponse.json(
          {
            error: {
              message: `Incorrect API key provided: ${API_KEY.slice(0, 8)}***${API_KEY.slice(-4)}.`,
              type: "invalid_request_error",
              param: null,
              code: "invalid_api_key",
            },
          },
          { status: 401 },
        ),
      ),
    );
    const result = await runTest();
    expect(result).toEqual({
      ok: false,
      message: "OpenAI rejected the API key (HTTP 401, invalid_api_key)",
    });
    expect(result.message).not.toContain(API_KEY.slice(-4));
  });

  it("reports other failures with their status", async () => {
    server.use(
      http.get(
        "https://api.openai.com/v1/models",
        () => new HttpResponse("upstream down", { status: 503 }),
      ),
    );
    await expect(runTest()).resolves.toEqual({ ok: false, message: "OpenAI answered HTTP 503" });
  });

  it("reports an unreachable API without throwing", async () => {
    server.use(http.get("https://api.openai.com/v1/models", () => HttpResponse.error()));
    await expect(runTest()).resolves.toEqual({
      ok: false,
      message: "could not reach the OpenAI API",
    });
  });

  it("calls the configured API base URL", async () => {
    const seen: string[] = [];
    server.use(
      http.get("https://llm.internal.example/openai/v1/models", ({ request }) => {
        seen.push(request.url);
        return HttpResponse.json({ object: "list", data: [] });
      }),
    );
    await expect(
      runTest({ apiBaseUrl: "https://llm.internal.example/openai/v1/" }),
    ).resolves.toMatchObject({
      ok: true,
    });
    expect(seen).toEqual(["https://llm.internal.example/openai/v1/models"]);
  });
});
