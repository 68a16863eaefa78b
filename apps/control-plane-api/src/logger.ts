import { DrizzleQueryError } from "drizzle-orm";

/**
 * The control plane logs through the one logger of every service (`@keyway/observability`, pino
 * with redaction); this module adds what only the control plane's log lines need.
 */
export {
  createLogger,
  createMemoryLogger,
  type Logger,
  type LogLevel,
} from "@keyway/observability";

/**
 * What a log line may say about a thrown error. A failed query's message (drizzle's
 * `DrizzleQueryError`: `Failed query: … params: …`) carries the query's parameters, which can be
 * secrets (a credential being stored, a token hash), and PostgreSQL's own message and detail may
 * quote a value (`invalid input syntax for type uuid: "…"`, `Key (name)=(…) already exists`).
 * So a database error is described by its SQLSTATE code and class, severity, constraint, table,
 * column and routine — never a message, a detail, the query or its parameters. Other errors keep
 * their name and message (our own messages never hold secrets).
 */
export function errorLogFields(error: unknown): Record<string, unknown> {
  if (error instanceof DrizzleQueryError) {
    const cause: unknown = error.cause;
    if (isPostgresError(cause)) return postgresErrorFields(cause);
    // Not a server error (a connection failure, say): its name and code are enough.
    const code = cause instanceof Error ? (cause as { code?: unknown }).code : undefined;
    return {
      error: "DrizzleQueryError",
      cause: cause instanceof Error ? cause.name : "unknown",
      ...(typeof code === "string" ? { code } : {}),
    };
  }
  if (isPostgresError(error)) return postgresErrorFields(error);
  if (error instanceof Error) return { error: error.name, message: error.message };
  return { error: "unknown" };
}

/** What postgres.js's `PostgresError` carries (its fields are snake_case, as on the wire). */
interface PostgresErrorLike {
  code: string;
  severity?: string;
  constraint_name?: string;
  table_name?: string;
  column_name?: string;
  routine?: string;
}

function isPostgresError(error: unknown): error is Error & PostgresErrorLike {
  return (
    error instanceof Error &&
    error.name === "PostgresError" &&
    typeof (error as { code?: unknown }).code === "string"
  );
}

function postgresErrorFields(error: PostgresErrorLike): Record<string, unknown> {
  const fields: Record<string, unknown> = {
    error: "PostgresError",
    code: error.code,
    // SQLSTATE class: 22 data exception, 23 integrity constraint violation, 08 connection, ...
    class: error.code.slice(0, 2),
    severity: error.severity,
    constraint: error.constraint_name,
    table: error.table_name,
    column: error.column_name,
    routine: error.routine,
  };
  for (const key of Object.keys(fields)) if (fields[key] === undefined) delete fields[key];
  return fields;
}
