import { readFile } from "node:fs/promises";
import { rootCertificates } from "node:tls";

/**
 * Where Linux distributions and macOS keep the system's trusted roots as one PEM file (Debian and
 * Ubuntu, Fedora/RHEL, openSUSE, Alpine, macOS with OpenSSL). The first readable one wins.
 */
export const SYSTEM_CA_FILES = [
  "/etc/ssl/certs/ca-certificates.crt",
  "/etc/pki/tls/certs/ca-bundle.crt",
  "/etc/ssl/ca-bundle.pem",
  "/etc/ssl/cert.pem",
] as const;

/**
 * The system's trusted roots as PEM, and where they came from. Without a system file, Node's own
 * copy of the Mozilla store stands in: a bundle must never hold the gateway CA alone, or TLS to
 * hosts the gateway splices (and does not intercept) cannot be verified.
 */
export async function systemRootsPem(
  files: readonly string[] = SYSTEM_CA_FILES,
): Promise<{ source: string; pem: string }> {
  for (const file of files) {
    const pem = await readFile(file, "utf8").catch(() => undefined);
    if (pem?.includes("-----BEGIN CERTIFICATE-----")) return { source: file, pem };
  }
  return { source: "node:tls rootCertificates", pem: `${rootCertificates.join("\n")}\n` };
}

/** One bundle: the system roots, then the gateway CA. */
export function caBundle(systemPem: string, gatewayCaPem: string): string {
  const roots = systemPem.endsWith("\n") ? systemPem : `${systemPem}\n`;
  const gateway = gatewayCaPem.endsWith("\n") ? gatewayCaPem : `${gatewayCaPem}\n`;
  return `${roots}# Keyway gateway CA\n${gateway}`;
}
