/**
 * What a failed job records (`last_error`) and logs: the cause's code and message, never a query
 * with its parameters (drizzle's query errors quote both, and parameters can hold payloads).
 */
export function describeJobError(error: unknown): string {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  if (!(cause instanceof Error)) return String(cause).slice(0, 500);
  const code =
    "code" in cause && typeof cause.code === "string" && cause.code !== "" ? `${cause.code}: ` : "";
  return `${code}${cause.message}`.slice(0, 500);
}
