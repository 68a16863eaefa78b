import { stringify } from "smol-toml";
import { ConfigError, problemsFromIssues } from "./config-error";
import { type KeywayConfigInput, keywayConfigSchema } from "./schema";

/**
 * Serialises a configuration as `keyway.toml` text after validating it, so nothing invalid is ever
 * written. The input is written as given (defaults stay implicit); `header` lines become comments.
 */
export function stringifyConfig(
  config: KeywayConfigInput,
  options: { header?: string } = {},
): string {
  const parsed = keywayConfigSchema.safeParse(config);
  if (!parsed.success) {
    throw new ConfigError(
      "CONFIG_INVALID",
      problemsFromIssues(parsed.error.issues, config, () => undefined),
    );
  }
  const comment = options.header
    ? `${options.header
        .split("\n")
        .map((line) => (line === "" ? "#" : `# ${line}`))
        .join("\n")}\n\n`
    : "";
  return `${comment}${stringify(config)}\n`;
}
