import { X509Certificate } from "node:crypto";
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

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/**
 * Reads a PEM bundle of CA certificates a setting names (`gateway.upstream_ca_path`): every
 * `CERTIFICATE` block in the file, each of which must parse. Node's TLS skips text it cannot read
 * without a word, so a wrong or empty file is refused here, naming the key, instead of showing up
 * later as upstreams that are not trusted.
 */
export async function readCertificateBundle(path: string, key: string): Promise<string[]> {
  const text = await readSettingFile(path, key);
  const certificates = text.match(PEM_CERTIFICATE) ?? [];
  if (certificates.length === 0) {
    throw new ConfigError("CONFIG_INVALID", [
      { key, message: `${path}: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file` },
    ]);
  }
  certificates.forEach((pem, index) => {
    try {
      new X509Certificate(pem);
    } catch {
      throw new ConfigError("CONFIG_INVALID", [
        { key, message: `${path}: certificate ${index + 1} is not a valid X.509 certificate` },
      ]);
    }
  });
  return certificates.map((pem) => `${pem}\n`);
}
