// @peculiar/x509 resolves its ASN.1 and algorithm providers through tsyringe, which needs the
// Reflect metadata API installed before the library is evaluated, so this import stays first.
import "reflect-metadata";
import { createPrivateKey, type KeyObject, randomBytes, webcrypto } from "node:crypto";
import { isIP } from "node:net";
import * as x509 from "@peculiar/x509";

export interface CertificateClock {
  now(): Date;
}

/** A certificate authority as stored in configuration: PEM certificate and PKCS#8 PEM key. */
export interface CertificateAuthorityPem {
  certPem: string;
  keyPem: string;
}

export interface CreateCertificateAuthorityOptions {
  commonName: string;
  /** Defaults to 3650 (ten years). */
  validityDays?: number;
  clock?: CertificateClock;
}

export interface LeafCertificateRequest {
  /** DNS names (wildcards such as `*.example.com` allowed) and IPv4/IPv6 addresses. */
  hosts: readonly string[];
  /** Defaults to 30. */
  validityDays?: number;
}

export interface LeafCertificate {
  certPem: string;
  /** The issuer's shared leaf key (see {@link createLeafIssuer}). */
  keyPem: string;
  notAfter: Date;
}

export type IssueLeafCertificate = (request: LeafCertificateRequest) => Promise<LeafCertificate>;

export interface LeafIssuerOptions {
  clock?: CertificateClock;
}

export type CertificateErrorCode = "x509.invalid_request" | "x509.unsupported_key";

export class CertificateError extends Error {
  override readonly name = "CertificateError";

  constructor(
    readonly code: CertificateErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const { subtle } = webcrypto;
const systemClock: CertificateClock = { now: () => new Date() };
const DAY_MS = 86_400_000;
// Issued certificates start an hour in the past so that clients with a slightly slow clock accept them.
const BACKDATE_MS = 3_600_000;
const P256 = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/** Generates a new self-signed CA (ECDSA P-256) that may sign leaf certificates only. */
export async function createCertificateAuthority(
  options: CreateCertificateAuthorityOptions,
): Promise<CertificateAuthorityPem> {
  const validityDays = options.validityDays ?? 3650;
  assertValidityDays(validityDays);
  const now = (options.clock ?? systemClock).now();
  const keys = await subtle.generateKey(P256, true, ["sign", "verify"]);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerialNumber(),
      name: [{ CN: [options.commonName] }],
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(now.getTime() + validityDays * DAY_MS),
      signingAlgorithm: P256,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );
  return {
    certPem: certificate.toString("pem"),
    keyPem: await exportPrivateKeyPem(keys.privateKey),
  };
}

/**
 * Prepares everything leaf issuance needs once — the imported CA key, one ECDSA P-256 leaf key pair
 * shared by every leaf this issuer signs, and the fixed extensions — and returns the function that
 * issues leaves, so that issuing one costs a single signature. Sharing the leaf key is sound only
 * because leaf keys never leave the process that serves them (the gateway, or a test server).
 */
export async function createLeafIssuer(
  ca: CertificateAuthorityPem,
  options: LeafIssuerOptions = {},
): Promise<IssueLeafCertificate> {
  const clock = options.clock ?? systemClock;
  const caCertificate = new x509.X509Certificate(ca.certPem);
  const caKey = createPrivateKey(ca.keyPem);
  const signingAlgorithm = signingAlgorithmFor(caKey);
  const caSigningKey = await subtle.importKey(
    "pkcs8",
    caKey.export({ type: "pkcs8", format: "der" }),
    signingAlgorithm,
    false,
    ["sign"],
  );
  const leafKeys = await subtle.generateKey(P256, true, ["sign", "verify"]);
  const leafKeyPem = await exportPrivateKeyPem(leafKeys.privateKey);
  // Exported once, so that each issuance skips a key export and goes straight to signing.
  const leafPublicKey = new x509.PublicKey(await subtle.exportKey("spki", leafKeys.publicKey));
  const fixedExtensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
    await x509.SubjectKeyIdentifierExtension.create(leafKeys.publicKey, false, webcrypto),
    await x509.AuthorityKeyIdentifierExtension.create(caCertificate, false, webcrypto),
  ];

  return async function issueLeafCertificate(request) {
    const validityDays = request.validityDays ?? 30;
    assertValidityDays(validityDays);
    const names = request.hosts.map(subjectAlternativeName);
    const first = names[0];
    if (first === undefined) {
      throw new CertificateError(
        "x509.invalid_request",
        "a leaf certificate needs at least one host",
      );
    }
    const now = clock.now().getTime();
    const notAfter = new Date(now + validityDays * DAY_MS);
    const certificate = await x509.X509CertificateGenerator.create(
      {
        serialNumber: randomSerialNumber(),
        subject: [{ CN: [first.value] }],
        issuer: caCertificate.subjectName,
        notBefore: new Date(now - BACKDATE_MS),
        notAfter,
        signingAlgorithm,
        publicKey: leafPublicKey,
        signingKey: caSigningKey,
        extensions: [...fixedExtensions, new x509.SubjectAlternativeNameExtension(names, false)],
      },
      webcrypto,
    );
    return { certPem: certificate.toString("pem"), keyPem: leafKeyPem, notAfter };
  };
}

function subjectAlternativeName(host: string): x509.JsonGeneralName {
  // URL-style brackets around IPv6 literals are accepted, as hosts often come from URLs.
  const unbracketed = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (isIP(unbracketed) !== 0) return { type: "ip", value: unbracketed };
  const dnsName = host.toLowerCase();
  if (!DNS_NAME.test(dnsName) || dnsName.length > 253) {
    throw new CertificateError(
      "x509.invalid_request",
      `"${host}" is neither a DNS name nor an IP address`,
    );
  }
  return { type: "dns", value: dnsName };
}

// Labels of letters, digits and inner hyphens; the leftmost label may be a lone "*" wildcard.
const DNS_NAME =
  /^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

function signingAlgorithmFor(
  key: KeyObject,
): webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === "ec" && details?.namedCurve === "prime256v1") return P256;
  if (key.asymmetricKeyType === "ec" && details?.namedCurve === "secp384r1") {
    return { name: "ECDSA", namedCurve: "P-384", hash: "SHA-384" };
  }
  if (key.asymmetricKeyType === "rsa") return { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  throw new CertificateError(
    "x509.unsupported_key",
    `CA keys must be ECDSA P-256, ECDSA P-384 or RSA, not ${key.asymmetricKeyType ?? "unknown"} ${details?.namedCurve ?? ""}`.trim(),
  );
}

function assertValidityDays(days: number): void {
  if (!Number.isInteger(days) || days < 1) {
    throw new CertificateError("x509.invalid_request", "validityDays must be a positive integer");
  }
}

/** 16 random bytes, the first one in 0x01..0x7f so the DER integer is positive and keeps its length. */
function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString("hex");
}

async function exportPrivateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await subtle.exportKey("pkcs8", key));
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN PRIVATE KEY-----\n${lines.join("\n")}\n-----END PRIVATE KEY-----\n`;
}
