// @peculiar/x509 resolves its ASN.1 and algorithm providers through tsyringe, which needs the
// Reflect metadata API installed before the library is evaluated, so this import stays first.
import "reflect-metadata";
import { createPrivateKey, type KeyObject, randomBytes, sign, webcrypto } from "node:crypto";
import { isIP } from "node:net";
import * as x509 from "@peculiar/x509";
import * as der from "./der";

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
      serialNumber: randomSerialNumber().toString("hex"),
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
  const signature = leafSignatureFor(caKey);
  const leafKeys = await subtle.generateKey(P256, true, ["sign", "verify"]);
  const leafKeyPem = await exportPrivateKeyPem(leafKeys.privateKey);
  // Everything but the serial number, the dates, the subject and the SAN is the same for every
  // leaf: encoded once here, with @peculiar/x509, and spliced into each certificate as DER.
  const issuerDer = Buffer.from(caCertificate.subjectName.toArrayBuffer());
  const spkiDer = Buffer.from(await subtle.exportKey("spki", leafKeys.publicKey));
  const fixedExtensionsDer = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
    await x509.SubjectKeyIdentifierExtension.create(leafKeys.publicKey, false, webcrypto),
    await x509.AuthorityKeyIdentifierExtension.create(caCertificate, false, webcrypto),
  ].map((extension) => Buffer.from(extension.rawData));

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
    // Whole seconds: DER times have no fractions, and `notAfter` must match the certificate.
    const now = Math.floor(clock.now().getTime() / 1000) * 1000;
    const notAfter = new Date(now + validityDays * DAY_MS);
    // RFC 5280 §4.1: TBSCertificate, then the CA's signature over it.
    const tbs = der.sequence(
      der.explicit(0, der.unsignedInteger(Buffer.from([2]))), // v3
      der.unsignedInteger(randomSerialNumber()),
      signature.algorithmDer,
      issuerDer,
      der.sequence(der.time(new Date(now - BACKDATE_MS)), der.time(notAfter)),
      der.sequence(
        der.set(der.sequence(der.objectIdentifier(OID_COMMON_NAME), der.utf8String(first.value))),
      ),
      spkiDer,
      der.explicit(
        3,
        der.sequence(
          ...fixedExtensionsDer,
          der.sequence(
            der.objectIdentifier(OID_SUBJECT_ALT_NAME),
            der.octetString(der.sequence(...names.map(generalNameDer))),
          ),
        ),
      ),
    );
    const signatureBytes = sign(signature.hash, tbs, { key: caKey, dsaEncoding: "der" });
    const certificate = der.sequence(tbs, signature.algorithmDer, der.bitString(signatureBytes));
    return { certPem: toPem("CERTIFICATE", certificate), keyPem: leafKeyPem, notAfter };
  };
}

const OID_COMMON_NAME = "2.5.4.3";
const OID_SUBJECT_ALT_NAME = "2.5.29.17";

interface SubjectAltName {
  type: "dns" | "ip";
  value: string;
}

/** GeneralName: dNSName [2] IA5String or iPAddress [7] OCTET STRING (4 or 16 bytes). */
function generalNameDer(name: SubjectAltName): Buffer {
  return name.type === "dns"
    ? der.implicitPrimitive(2, Buffer.from(name.value, "ascii"))
    : der.implicitPrimitive(7, ipAddressBytes(name.value));
}

/** The CA key's signature algorithm: its AlgorithmIdentifier and the hash `crypto.sign` uses. */
function leafSignatureFor(key: KeyObject): { algorithmDer: Buffer; hash: string } {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === "ec" && details?.namedCurve === "prime256v1") {
    // ecdsa-with-SHA256 (RFC 5758 §3.2: parameters absent)
    return {
      algorithmDer: der.sequence(der.objectIdentifier("1.2.840.10045.4.3.2")),
      hash: "sha256",
    };
  }
  if (key.asymmetricKeyType === "ec" && details?.namedCurve === "secp384r1") {
    return {
      algorithmDer: der.sequence(der.objectIdentifier("1.2.840.10045.4.3.3")),
      hash: "sha384",
    };
  }
  if (key.asymmetricKeyType === "rsa") {
    // sha256WithRSAEncryption (RFC 4055 §5: parameters NULL)
    const oid = der.objectIdentifier("1.2.840.113549.1.1.11");
    return { algorithmDer: der.sequence(oid, Buffer.from([0x05, 0x00])), hash: "sha256" };
  }
  throw new CertificateError(
    "x509.unsupported_key",
    `CA keys must be ECDSA P-256, ECDSA P-384 or RSA, not ${key.asymmetricKeyType ?? "unknown"} ${details?.namedCurve ?? ""}`.trim(),
  );
}

/** IPv4 → 4 bytes, IPv6 (including an IPv4 tail such as `::ffff:10.0.0.1`) → 16 bytes. */
function ipAddressBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split(".").map(Number));
  let text = ip;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".", lastColon)) {
    const [a = 0, b = 0, c = 0, d = 0] = text
      .slice(lastColon + 1)
      .split(".")
      .map(Number);
    tail.push((a << 8) | b, (c << 8) | d);
    text = text.slice(0, lastColon + 1);
    if (!text.endsWith("::")) text = text.slice(0, -1);
  }
  const groupsOf = (part: string) =>
    part === "" ? [] : part.split(":").map((group) => Number.parseInt(group, 16));
  const [head = "", rest] = text.split("::");
  const before = groupsOf(head);
  const after = rest === undefined ? [] : groupsOf(rest);
  const zeros = rest === undefined ? 0 : 8 - before.length - after.length - tail.length;
  const groups = [...before, ...new Array<number>(zeros).fill(0), ...after, ...tail];
  const bytes = Buffer.alloc(16);
  groups.forEach((group, index) => {
    bytes.writeUInt16BE(group, index * 2);
  });
  return bytes;
}

function toPem(label: string, bytes: Buffer): string {
  const lines = bytes.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

function subjectAlternativeName(host: string): SubjectAltName {
  // URL-style brackets around IPv6 literals are accepted, as hosts often come from URLs.
  const unbracketed = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (isIP(unbracketed) !== 0) return { type: "ip", value: unbracketed };
  // A fully qualified `api.x.com.` (or `127.0.0.1.`) is the same host; a certificate names it
  // without the dot, which is how TLS clients compare names.
  if (host.endsWith(".") && !host.endsWith("..")) return subjectAlternativeName(host.slice(0, -1));
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

function assertValidityDays(days: number): void {
  if (!Number.isInteger(days) || days < 1) {
    throw new CertificateError("x509.invalid_request", "validityDays must be a positive integer");
  }
}

/** 16 random bytes, the first one in 0x01..0x7f so the DER integer is positive and keeps its length. */
function randomSerialNumber(): Buffer {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes;
}

async function exportPrivateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await subtle.exportKey("pkcs8", key));
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN PRIVATE KEY-----\n${lines.join("\n")}\n-----END PRIVATE KEY-----\n`;
}
