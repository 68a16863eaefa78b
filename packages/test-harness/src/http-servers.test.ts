import { Agent, fetch } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { echoHandler, type RunningServer, startHttpServer } from "./http-servers";

describe("startHttpServer", () => {
  let echo: RunningServer;
  const agent = new Agent();

  beforeAll(async () => {
    echo = await startHttpServer(echoHandler);
  });

  afterAll(async () => {
    await agent.close();
    await echo?.close();
  });

  it("listens on a free port of 127.0.0.1", () => {
    expect(echo.url).toBe(`http://127.0.0.1:${echo.port}`);
    expect(echo.port).toBeGreaterThan(0);
  });

  it("echoes the method, URL, headers and body it received", async () => {
    const response = await fetch(`${echo.url}/v1/things?q=1`, {
      method: "POST",
      headers: { "content-type": "text/plain", "x-trace": "abc" },
      body: "hello",
      dispatcher: agent,
    });

    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      method: "POST",
      url: "/v1/things?q=1",
      headers: expect.objectContaining({
        "content-type": "text/plain",
        "x-trace": "abc",
        host: `127.0.0.1:${echo.port}`,
      }),
      body: "hello",
    });
  });

  it("answers 500 when the handler throws", async () => {
    const failing = await startHttpServer(() => {
      throw new Error("handler broke");
    });
    try {
      const response = await fetch(failing.url, { dispatcher: agent });

      expect(response.status).toBe(500);
      expect(await response.text()).toBe("handler broke");
    } finally {
      await failing.close();
    }
  });

  it("closes promptly even while a request is still open", async () => {
    const stalled = await startHttpServer(() => new Promise<void>(() => {}));
    const pending = fetch(stalled.url, { dispatcher: agent }).catch((error: unknown) => error);
    await new Promise((resolve) => setTimeout(resolve, 50));

    await stalled.close();

    expect(await pending).toBeInstanceOf(TypeError);
    await expect(fetch(stalled.url, { dispatcher: agent })).rejects.toThrow();
  });
});
