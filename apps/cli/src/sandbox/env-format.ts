/** Output formats of `keyway sandbox env`. */
export type EnvFormat = "shell" | "dotenv" | "json";

export function isEnvFormat(value: string): value is EnvFormat {
  return value === "shell" || value === "dotenv" || value === "json";
}

// Values made only of these characters need no quoting in either a shell or a dotenv file.
const PLAIN = /^[A-Za-z0-9_.,:/@%+=-]*$/;

/**
 * The environment as `export NAME='value'` lines (for `eval` or `source`), as a dotenv file
 * (`NAME=value`, double-quoted with escapes only when a value needs it: Docker's `--env-file`
 * takes values literally, and Keyway's own values never need quotes), or as one JSON object.
 * Names are sorted so the output is stable.
 */
export function formatEnvironment(
  env: Readonly<Record<string, string>>,
  format: EnvFormat,
): string {
  const names = Object.keys(env).sort();
  if (format === "json") {
    return `${JSON.stringify(Object.fromEntries(names.map((n) => [n, env[n]])), null, 2)}\n`;
  }
  const line =
    format === "shell"
      ? (name: string, value: string) =>
          `export ${name}=${PLAIN.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`}`
      : (name: string, value: string) =>
          `${name}=${PLAIN.test(value) ? value : JSON.stringify(value)}`;
  return names.map((name) => `${line(name, env[name] ?? "")}\n`).join("");
}
