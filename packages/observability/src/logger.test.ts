import { describe, expect, it } from "vitest";
import { createMemoryLogger, REDACTED_PATHS } from "./logger";

const SECRET = "sk-live-0123456789abcdef";

describe("createLogger", () => {
  it("writes one JSON object per line with level, time, service and message", () => {
    const logger = createMemoryLogger({ service: "test-service" });
    logger.info("started", { port: 8080 });
    logger.debug("no fields");
    const [first, second] = logger.lines.map((line) => JSON.parse(line));
    expect(first).toMatchObject({
      level: "info",
      service: "test-service",
      msg: "started",
      port: 8080,
    });
    expect(new Date(first.time).toISOString()).toBe(first.time);
    expect(second).toMatchObject({ level: "debug", msg: "no fields" });
  });

  it("drops lines below the configured level", () => {
    const logger = createMemoryLogger({ level: "warn" });
    logger.info("quiet");
    logger.warn("loud");
    expect(logger.lines.map((line) => JSON.parse(line).msg)).toEqual(["loud"]);
  });

  it("redacts secret fields at the top level, one level down and in header maps", () => {
    const logger = createMemoryLogger();
    logger.warn("careless caller", {
      authorization: `Bearer ${SECRET}`,
      token: SECRET,
      clientSecret: SECRET,
      password: SECRET,
      cookie: `session=${SECRET}`,
      credential: { value: SECRET },
      upstream: { accessToken: SECRET, refreshToken: SECRET, apiKey: SECRET },
      headers: {
        authorization: `Bearer ${SECRET}`,
        "proxy-authorization": `Basic ${SECRET}`,
        cookie: SECRET,
        "set-cookie": SECRET,
        "x-api-key": SECRET,
        accept: "application/json",
      },
      request: { headers: { authorization: SECRET, "x-hub-signature-256": SECRET } },
    });
    const [line] = logger.lines;
    expect(line).not.toContain(SECRET);
    const entry = JSON.parse(line ?? "{}");
    expect(entry.authorization).toBe("[redacted]");
    expect(entry.credential).toBe("[redacted]");
    expect(entry.upstream.accessToken).toBe("[redacted]");
    expect(entry.headers.accept).toBe("application/json");
    expect(entry.request.headers.authorization).toBe("[redacted]");
  });

  it("names every redacted path as a valid pino path", () => {
    expect(REDACTED_PATHS.length).toBeGreaterThan(20);
    // pino throws at construction on a malformed path: building a logger is the check.
    expect(() => createMemoryLogger()).not.toThrow();
  });
});
