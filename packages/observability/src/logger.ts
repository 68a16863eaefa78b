import pino from "pino";

/**
 * The one logger of every Keyway service: pino, one JSON object per line
 * (`{"level":"info","time":"…","service":"…","msg":"…",…fields}`).
 *
 * Callers pass only non-secret fields: ids, codes, counts, durations. As a second line of defence
 * the values at `REDACTED_PATHS` (fields that name secrets, at the top level, one level down, and
 * in header maps) are replaced by `[redacted]` before a line is written; the secret-scan tests
 * drive real requests through the services and check no secret reaches a line.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";

export interface Logger {
  debug(message: string, fields?: Readonly<Record<string, unknown>>): void;
  info(message: string, fields?: Readonly<Record<string, unknown>>): void;
  warn(message: string, fields?: Readonly<Record<string, unknown>>): void;
  error(message: string, fields?: Readonly<Record<string, unknown>>): void;
}

/** A value of a prepared line's field: `undefined` leaves the field out, as `JSON.stringify` does. */
export type LineValue = string | number | undefined;

/** Writes one line of a prepared shape (`createLineWriter`). */
export type LineWriter<F extends string> = (fields: { readonly [K in F]: LineValue }) => void;

export interface LoggerOptions {
  /** `service` field of every line (`control-plane-api`, `data-plane-gateway`, …). */
  service?: string;
  /** `log.level` of the config file; `trace` logs as `debug`, `fatal` as `error`. */
  level?: LogLevel | "trace" | "fatal" | "silent";
  /** Where each line goes (without its newline); stdout by default. */
  write?: (line: string) => void;
  /** Fields on every line. */
  base?: Readonly<Record<string, unknown>>;
}

/** Field names whose values are secrets whatever the caller meant. */
const SECRET_FIELDS = [
  "authorization",
  "proxyAuthorization",
  "cookie",
  "setCookie",
  "token",
  "accessToken",
  "refreshToken",
  "idToken",
  "sessionToken",
  "apiKey",
  "api_key",
  "secret",
  "clientSecret",
  "client_secret",
  "password",
  "privateKey",
  "private_key",
  "credential",
  "credentials",
  "value",
];
/** Header names as they appear in a header map (`req.headers`, a fetch `Headers` object dump). */
const SECRET_HEADERS = [
  "authorization",
  "proxy-authorization",
  "cookie",
  "set-cookie",
  "x-api-key",
  "x-hub-signature-256",
  "x-slack-signature",
  "linear-signature",
  "webhook-signature",
];

/**
 * pino redaction paths: secret fields at the top level (`value` excepted: a top-level `value` is a
 * count or a metric in our lines) and secret headers in `headers` maps at the top level and under
 * `request`/`response`/`req`/`res`. No wildcard paths: pino's wildcard redaction cost ~150 µs per
 * line here (measured with the gateway's access-log line, 2026-12-05), against ~0 for these.
 * Secret fields one level down are handled by `redactNested` instead.
 */
export const REDACTED_PATHS: readonly string[] = [
  ...SECRET_FIELDS.filter((field) => field !== "value"),
  ...["", "request.", "response.", "req.", "res."].flatMap((prefix) =>
    SECRET_HEADERS.map((header) => `${prefix}headers["${header}"]`),
  ),
];

const NESTED_SECRET_FIELDS: ReadonlySet<string> = new Set(SECRET_FIELDS);
const CENSOR = "[redacted]";

/**
 * Secret fields one level down (`{ oauth: { accessToken } }`): objects holding one are copied with
 * it censored. Lines of scalars only (the gateway's access log) pass through after a type check
 * per field.
 */
function redactNested(fields: Record<string, unknown>): Record<string, unknown> {
  let result = fields;
  for (const key in fields) {
    const value = fields[key];
    if (typeof value !== "object" || value === null || Array.isArray(value)) continue;
    let copy: Record<string, unknown> | undefined;
    for (const inner in value) {
      if (!NESTED_SECRET_FIELDS.has(inner)) continue;
      copy ??= { ...(value as Record<string, unknown>) };
      copy[inner] = CENSOR;
    }
    if (copy === undefined) continue;
    if (result === fields) result = { ...fields };
    result[key] = copy;
  }
  return result;
}

const LEVELS: Readonly<Record<NonNullable<LoggerOptions["level"]>, pino.LevelWithSilent>> = {
  trace: "debug",
  debug: "debug",
  info: "info",
  warn: "warn",
  error: "error",
  fatal: "error",
  silent: "silent",
};

/**
 * ISO timestamps, formatted once per millisecond: under load a gateway logs many requests within
 * the same millisecond (the access log is one line per request).
 */
function isoTimestamp(): () => string {
  let lastMs = 0;
  let text = "";
  return () => {
    const nowMs = Date.now();
    if (nowMs !== lastMs) {
      lastMs = nowMs;
      text = `,"time":"${new Date(nowMs).toISOString()}"`;
    }
    return text;
  };
}

/** Builds a prepared line writer for one logger (`createLineWriter`); set by `createLogger`. */
type PrepareLine = <F extends string>(
  level: LogLevel,
  message: string,
  fieldNames: readonly F[],
) => LineWriter<F>;
/** The prepared-line factory of each logger `createLogger` made. */
const preparedLines = new WeakMap<Logger, PrepareLine>();

/**
 * Strings a JSON string holds as they are: no control character, quote, backslash or surrogate
 * (which `JSON.stringify` escapes).
 */
const JSON_SAFE = /^[\u0020\u0021\u0023-\u005b\u005d-\ud7ff\ue000-\uffff]*$/;

/** JSON for a prepared line's value, as pino writes it (non-finite numbers are `null`). */
function lineValueJson(value: string | number): string {
  if (typeof value === "number") return Number.isFinite(value) ? `${value}` : "null";
  // Ids, codes and hosts need no escaping: quoting them is cheaper than `JSON.stringify`.
  return JSON_SAFE.test(value) ? `"${value}"` : JSON.stringify(value);
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const write = options.write;
  const destination =
    write === undefined
      ? pino.destination({ dest: 1, sync: true })
      : { write: (chunk: string) => write(chunk.endsWith("\n") ? chunk.slice(0, -1) : chunk) };
  const timestamp = isoTimestamp();
  const log = pino(
    {
      level: LEVELS[options.level ?? "info"],
      base: {
        ...(options.service === undefined ? {} : { service: options.service }),
        ...options.base,
      },
      messageKey: "msg",
      timestamp,
      formatters: { level: (label) => ({ level: label }), log: redactNested },
      redact: { paths: [...REDACTED_PATHS], censor: CENSOR },
    },
    destination,
  );

  /**
   * The same line pino writes for `log[level](fields, message)`, from pino's own level prefix and
   * base fields (read once through `pino.symbols`), the same clock, to the same destination.
   */
  const prepareLine: PrepareLine = (level, message, fieldNames) => {
    const levelPrefixes: unknown = Reflect.get(log, pino.symbols.lsCacheSym);
    const levelPrefix: unknown =
      typeof levelPrefixes === "object" && levelPrefixes !== null
        ? Reflect.get(levelPrefixes, log.levels.values[level] ?? -1)
        : undefined;
    const bindings: unknown = Reflect.get(log, pino.symbols.chindingsSym);
    if (typeof levelPrefix !== "string" || typeof bindings !== "string") {
      // Not the pino this was written against: its generic path writes the same line.
      return (fields) => {
        const record: Readonly<Record<string, LineValue>> = fields;
        log[level](record, message);
      };
    }
    const fieldKeys = fieldNames.map((name) => ({ name, key: `,${JSON.stringify(name)}:` }));
    const end = `,"msg":${JSON.stringify(message)}}`;
    // A `write` sink takes lines without their newline: hand it the line as built.
    const writeLine =
      write === undefined ? (line: string) => destination.write(`${line}\n`) : write;
    // Each field's last string value and its JSON: consecutive lines mostly repeat the session,
    // route, method and host, which then cost a comparison instead of a scan of the string.
    const lastValues: (string | undefined)[] = fieldNames.map(() => undefined);
    const lastJson: string[] = fieldNames.map(() => "");
    return (fields) => {
      if (!log.isLevelEnabled(level)) return;
      let line = levelPrefix + timestamp() + bindings;
      for (let at = 0; at < fieldKeys.length; at++) {
        const field = fieldKeys[at];
        if (field === undefined) continue;
        const { key } = field;
        const value = fields[field.name];
        if (value === undefined) continue;
        if (typeof value === "number") {
          line += key + lineValueJson(value);
        } else if (value === lastValues[at]) {
          line += key + lastJson[at];
        } else {
          const json = lineValueJson(value);
          lastValues[at] = value;
          lastJson[at] = json;
          line += key + json;
        }
      }
      writeLine(line + end);
    };
  };

  const logger: Logger = {
    debug: (message, fields) =>
      fields === undefined ? log.debug(message) : log.debug(fields, message),
    info: (message, fields) =>
      fields === undefined ? log.info(message) : log.info(fields, message),
    warn: (message, fields) =>
      fields === undefined ? log.warn(message) : log.warn(fields, message),
    error: (message, fields) =>
      fields === undefined ? log.error(message) : log.error(fields, message),
  };
  preparedLines.set(logger, prepareLine);
  return logger;
}

/** Top-level field names pino censors (`REDACTED_PATHS` without the header-map paths). */
const REDACTED_FIELDS: ReadonlySet<string> = new Set(
  SECRET_FIELDS.filter((field) => field !== "value"),
);

/**
 * A writer of one hot path's line (the gateway's access log, one per request): the message and
 * the field names are fixed here, so each line is written from a template built once instead of
 * through pino's generic serialiser and redaction — pino's `asJson` was ≈ 8.5 % of the gateway's
 * busy time (docs/benchmarks.md, "Gateway after the shared observability stack"). The line is
 * the one `logger[level](message, fields)` writes (same order, level, time and base fields, to
 * the same destination). Values are scalars, and a field name pino would censor is refused here,
 * once, so a prepared line cannot carry what redaction would have removed. Loggers not made by
 * `createLogger` get their own `logger[level]` call per line.
 */
export function createLineWriter<F extends string>(
  logger: Logger,
  level: LogLevel,
  message: string,
  fieldNames: readonly F[],
): LineWriter<F> {
  for (const name of fieldNames) {
    if (REDACTED_FIELDS.has(name)) {
      throw new TypeError(`"${name}" is a redacted field: it cannot be a prepared line's field`);
    }
  }
  const prepare = preparedLines.get(logger);
  if (prepare !== undefined) return prepare(level, message, fieldNames);
  return (fields) => logger[level](message, fields);
}

/** A logger that keeps its lines in memory, for tests that scan them for secrets. */
export function createMemoryLogger(
  options: Omit<LoggerOptions, "write"> = {},
): Logger & { lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", ...options, write: (line) => lines.push(line) });
  return Object.assign(logger, { lines });
}
