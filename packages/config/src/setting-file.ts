import { readFile } from "node:fs/promises";
import { ConfigError } from "./config-error";

/** Why a file could not be read, in words an operator can act on. */
export function unreadableReason(error: unknown): string {
  const code = error instanceof Error && "code" in error ? error.code : undefined;
  if (code === "ENOENT") return "file not found";
  if (code === "EACCES") return "permission denied";
  return `cannot read (${String(code ?? error)})`;
}

/**
 * Reads a file a setting names (a CA certificate, a private key). A missing or unreadable file is
 * a `ConfigError` naming the key: `config error: gateway.ca_cert_path: /etc/ca.pem: file not found`.
 */
export async function readSettingFile(path: string, key: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError("CONFIG_UNREADABLE", [
      { key, message: `${path}: ${unreadableReason(error)}` },
    ]);
  }
}
