import { describe, expect, it } from "vitest";
import { createLineWriter, createMemoryLogger, type Logger, REDACTED_PATHS } from "./logger";

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

describe("createLineWriter", () => {
  const FIELDS = ["kind", "sessionId", "status", "durationMs", "host", "reason", "ratio"] as const;
  const lines = [
    {
      kind: "http",
      sessionId: "sess_1",
      status: 200,
      durationMs: 1.25,
      host: 'we"ird\\host\n\u0001é😀\ud800',
      reason: undefined,
      ratio: Number.NaN,
    },
    {
      kind: "tunnel",
      sessionId: undefined,
      status: 0,
      durationMs: -0.5,
      host: "",
      reason: "ERR_TLS_CERT_ALTNAME_INVALID: Hostname/IP does not match",
      ratio: Number.POSITIVE_INFINITY,
    },
    // Repeated values (the writer reuses their JSON), then a repeated field next to a new one.
    {
      kind: "http",
      sessionId: "sess_1",
      status: 200,
      durationMs: 1.25,
      host: 'we"ird\\host\n\u0001é😀\ud800',
      reason: undefined,
      ratio: 0,
    },
    {
      kind: "http",
      sessionId: "sess_2",
      status: 201,
      durationMs: 3,
      host: "api.example:8443",
      reason: 'quote " here',
      ratio: 1,
    },
  ];

  it("writes the line logger[level] writes for the same fields, character for character", () => {
    const prepared = createMemoryLogger({ service: "svc", base: { replica: "a" } });
    const generic = createMemoryLogger({ service: "svc", base: { replica: "a" } });
    const write = createLineWriter(prepared, "info", "request", FIELDS);
    for (const fields of lines) {
      write(fields);
      generic.info("request", fields);
    }
    // The clock is the same only within a millisecond: compare without it.
    const withoutTime = (line: string) => line.replace(/"time":"[^"]+"/, '"time":""');
    expect(prepared.lines.map(withoutTime)).toEqual(generic.lines.map(withoutTime));
    expect(prepared.lines).toHaveLength(lines.length);
    expect(JSON.parse(prepared.lines[0] ?? "")).toMatchObject({ level: "info", ratio: null });
  });

  it("follows the logger's level", () => {
    const logger = createMemoryLogger({ level: "warn" });
    createLineWriter(logger, "info", "request", FIELDS)(lines[0] ?? lines[1]!);
    createLineWriter(logger, "warn", "slow", ["kind"])({ kind: "http" });
    expect(logger.lines.map((line) => JSON.parse(line).msg)).toEqual(["slow"]);
  });

  it("refuses a field that redaction would censor, so no secret can bypass it", () => {
    const logger = createMemoryLogger();
    for (const name of ["authorization", "token", "credential", "apiKey", "password"]) {
      expect(() => createLineWriter(logger, "info", "request", ["kind", name])).toThrow(TypeError);
    }
    expect(logger.lines).toEqual([]);
  });

  it("writes through any other Logger's own methods", () => {
    const calls: [string, Readonly<Record<string, unknown>> | undefined][] = [];
    const other: Logger = {
      debug: () => {},
      info: (message, fields) => calls.push([message, fields]),
      warn: () => {},
      error: () => {},
    };
    createLineWriter(other, "info", "request", ["kind"])({ kind: "http" });
    expect(calls).toEqual([["request", { kind: "http" }]]);
  });
});
