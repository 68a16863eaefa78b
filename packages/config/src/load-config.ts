import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { parse, TomlError } from "smol-toml";
import { ConfigError, problemsFromIssues } from "./config-error";
import { applyEnvOverrides, type EnvOverride, readEnvOverrides } from "./env-overrides";
import { type KeywayConfig, keywayConfigSchema } from "./schema";
import { unreadableReason } from "./setting-file";

export type Env = Readonly<Record<string, string | undefined>>;

export interface LoadConfigOptions {
  /**
   * The TOML file. Default: `env.KEYWAY_CONFIG`, else `./keyway.toml`. A file named explicitly
   * (here or by `KEYWAY_CONFIG`) must exist; a missing default file counts as empty, so a
   * deployment can be configured by environment variables alone.
   */
  path?: string;
  /** Default `process.env`: this package is the one place that reads it. */
  env?: Env;
  /** Directory relative paths are resolved against when there is no file. Default `process.cwd()`. */
  cwd?: string;
}

/**
 * Reads `keyway.toml`, applies `KEYWAY_*` overrides, validates, and resolves relative paths
 * (`database.embedded.data_dir`, `gateway.ca_cert_path`, `gateway.ca_key_path`,
 * `gateway.upstream_ca_path`, `gateway.identity.private_key_path`) against the config file's
 * directory.
 * Throws `ConfigError` listing every problem, each naming its key.
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<KeywayConfig> {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const explicitPath = options.path ?? nonEmpty(env.KEYWAY_CONFIG);
  const configPath = resolve(cwd, explicitPath ?? "keyway.toml");
  const text = await readConfigText(configPath, explicitPath !== undefined);
  const document = text === undefined ? {} : parseToml(text, configPath);

  const fromEnv = readEnvOverrides(env, keywayConfigSchema);
  if (!fromEnv.ok) {
    throw new ConfigError(
      "CONFIG_INVALID",
      fromEnv.problems.map(({ envVar, message }) => ({ key: "", envVar, message })),
    );
  }
  const merged = applyEnvOverrides(document, fromEnv.overrides);
  const parsed = keywayConfigSchema.safeParse(merged);
  if (!parsed.success) {
    throw new ConfigError(
      "CONFIG_INVALID",
      problemsFromIssues(parsed.error.issues, merged, envSourceOf(fromEnv.overrides)),
    );
  }
  return resolvePaths(parsed.data, text === undefined ? cwd : dirname(configPath));
}

async function readConfigText(path: string, mustExist: boolean): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    const code = error instanceof Error && "code" in error ? error.code : undefined;
    if (code === "ENOENT" && !mustExist) return undefined;
    throw new ConfigError("CONFIG_UNREADABLE", [
      { key: "", message: `${path}: ${unreadableReason(error)}` },
    ]);
  }
}

function parseToml(text: string, path: string): Record<string, unknown> {
  try {
    // `__proto__` / `constructor` keys would reach the validated config through its prototype.
    return parse(text, { unsafeKeyBehaviour: "throw" });
  } catch (error) {
    if (!(error instanceof TomlError)) throw error;
    // Only the first line of the message: the rest quotes the document, which may hold secrets.
    const reason = error.message.split("\n", 1)[0]?.replace(/^Invalid TOML document: /, "");
    throw new ConfigError("CONFIG_UNREADABLE", [
      {
        key: "",
        message: `${path}: invalid TOML at line ${error.line}, column ${error.column}: ${reason}`,
      },
    ]);
  }
}

/** The variable that set a key, or the table holding it (JSON-valued overrides). */
function envSourceOf(overrides: readonly EnvOverride[]) {
  return (path: readonly PropertyKey[]): string | undefined => {
    let best: EnvOverride | undefined;
    for (const override of overrides) {
      const covers =
        override.path.length <= path.length &&
        override.path.every((segment, index) => segment === String(path[index]));
      if (covers && (!best || override.path.length >= best.path.length)) best = override;
    }
    return best?.envVar;
  };
}

function resolvePaths(config: KeywayConfig, baseDir: string): KeywayConfig {
  const { identity } = config.gateway;
  return {
    ...config,
    database: {
      ...config.database,
      embedded: {
        ...config.database.embedded,
        data_dir: resolve(baseDir, config.database.embedded.data_dir),
      },
    },
    gateway: {
      ...config.gateway,
      ca_cert_path: resolve(baseDir, config.gateway.ca_cert_path),
      ca_key_path: resolve(baseDir, config.gateway.ca_key_path),
      ...(config.gateway.upstream_ca_path === undefined
        ? {}
        : { upstream_ca_path: resolve(baseDir, config.gateway.upstream_ca_path) }),
      identity:
        identity?.private_key_path === undefined
          ? identity
          : { ...identity, private_key_path: resolve(baseDir, identity.private_key_path) },
    },
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}
