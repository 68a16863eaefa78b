/**
 * One JSON object per line on stdout. Callers pass only non-secret fields (ids, codes, counts,
 * durations); the gateway never logs a token, a credential, a header value or a request path.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";

const ORDER: Readonly<Record<LogLevel | "silent", number>> = {
  debug: 10,
  info: 20,
  warn: 30,
  error: 40,
  silent: 100,
};

export interface Logger {
  debug(message: string, fields?: Readonly<Record<string, unknown>>): void;
  info(message: string, fields?: Readonly<Record<string, unknown>>): void;
  warn(message: string, fields?: Readonly<Record<string, unknown>>): void;
  error(message: string, fields?: Readonly<Record<string, unknown>>): void;
  /** Writes a complete, already non-secret record as one line (the per-request access log). */
  record(entry: Readonly<Record<string, unknown>>): void;
}

export interface LoggerOptions {
  level?: LogLevel | "silent";
  write?: (line: string) => void;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const threshold = ORDER[options.level ?? "info"];
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const emit = (
    level: LogLevel,
    message: string,
    fields: Readonly<Record<string, unknown>> | undefined,
  ) => {
    if (ORDER[level] < threshold) return;
    write(JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...fields }));
  };
  return {
    debug: (message, fields) => emit("debug", message, fields),
    info: (message, fields) => emit("info", message, fields),
    warn: (message, fields) => emit("warn", message, fields),
    error: (message, fields) => emit("error", message, fields),
    record: (entry) => {
      if (ORDER.info >= threshold) write(JSON.stringify(entry));
    },
  };
}

/** A logger that keeps its lines in memory, for tests that scan them for secrets. */
export function createMemoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return Object.assign(createLogger({ level: "debug", write: (line) => lines.push(line) }), {
    lines,
  });
}
