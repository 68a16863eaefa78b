// @peculiar/x509 (the independent decoder here) needs the Reflect metadata API first.
import "reflect-metadata";
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  webcrypto,
  X509Certificate,
} from "node:crypto";
import * as x509 from "@peculiar/x509";
import { describe, expect, it } from "vitest";
import {
  type CertificateAuthorityPem,
  CertificateError,
  createCertificateAuthority,
  createLeafIssuer,
} from "./certificates";

const at = (iso: string) => ({ now: () => new Date(iso) });

describe("createCertificateAuthority", () => {
  it("creates a self-signed CA certificate whose key matches it", async () => {
    const ca = await createCertificateAuthority({ commonName: "Keyway Dev CA" });
    const certificate = new X509Certificate(ca.certPem);

    expect(certificate.ca).toBe(true);
    expect(certificate.subject).toBe("CN=Keyway Dev CA");
    expect(certificate.issuer).toBe("CN=Keyway Dev CA");
    expect(certificate.verify(certificate.publicKey)).toBe(true);
    expect(certificate.checkPrivateKey(createPrivateKey(ca.keyPem))).toBe(true);
  });

  it("takes its validity period from the clock", async () => {
    const ca = await createCertificateAuthority({
      commonName: "CA",
      validityDays: 10,
      clock: at("2030-01-01T00:00:00Z"),
    });
    const certificate = new X509Certificate(ca.certPem);

    expect(new Date(certificate.validFrom)).toEqual(new Date("2029-12-31T23:00:00Z"));
    expect(new Date(certificate.validTo)).toEqual(new Date("2030-01-11T00:00:00Z"));
  });
});

describe("createLeafIssuer", () => {
  let ca: CertificateAuthorityPem;

  it("issues a server certificate for DNS names and IP addresses, signed by the CA", async () => {
    ca = await createCertificateAuthority({ commonName: "Keyway Test CA" });
    const issueLeafCertificate = await createLeafIssuer(ca);
    const leaf = await issueLeafCertificate({
      hosts: ["API.Example.test", "*.example.test", "127.0.0.1", "[::1]"],
    });
    const certificate = new X509Certificate(leaf.certPem);
    const caCertificate = new X509Certificate(ca.certPem);

    expect(certificate.ca).toBe(false);
    expect(certificate.subject).toBe("CN=api.example.test");
    expect(certificate.checkIssued(caCertificate)).toBe(true);
    expect(certificate.verify(caCertificate.publicKey)).toBe(true);
    expect(certificate.checkPrivateKey(createPrivateKey(leaf.keyPem))).toBe(true);
    expect(certificate.subjectAltName).toBe(
      "DNS:api.example.test, DNS:*.example.test, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1",
    );
    expect(certificate.checkHost("api.example.test")).toBe("api.example.test");
    expect(certificate.checkHost("other.example.test")).toBe("*.example.test");
    expect(certificate.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(certificate.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]);
  });

  it("names a fully qualified host (trailing dot) without its dot: a DNS name or an address", async () => {
    const issueLeafCertificate = await createLeafIssuer(ca);
    const leaf = await issueLeafCertificate({ hosts: ["api.example.test.", "127.0.0.1."] });
    const certificate = new X509Certificate(leaf.certPem);

    expect(certificate.subject).toBe("CN=api.example.test");
    expect(certificate.subjectAltName).toBe("DNS:api.example.test, IP Address:127.0.0.1");
  });

  it("shares one leaf key across leaves but gives each its own serial number", async () => {
    const issueLeafCertificate = await createLeafIssuer(ca);
    const first = await issueLeafCertificate({ hosts: ["a.test"] });
    const second = await issueLeafCertificate({ hosts: ["b.test"] });

    expect(second.keyPem).toBe(first.keyPem);
    expect(new X509Certificate(second.certPem).serialNumber).not.toBe(
      new X509Certificate(first.certPem).serialNumber,
    );
  });

  it("dates leaves from the issuer's clock", async () => {
    const issueLeafCertificate = await createLeafIssuer(ca, { clock: at("2031-06-01T12:00:00Z") });
    const leaf = await issueLeafCertificate({ hosts: ["a.test"], validityDays: 7 });
    const certificate = new X509Certificate(leaf.certPem);

    expect(leaf.notAfter).toEqual(new Date("2031-06-08T12:00:00Z"));
    expect(new Date(certificate.validTo)).toEqual(leaf.notAfter);
    expect(new Date(certificate.validFrom)).toEqual(new Date("2031-06-01T11:00:00Z"));
  });

  it("rejects requests without hosts, with malformed hosts or a bad validity", async () => {
    const issueLeafCertificate = await createLeafIssuer(ca);

    for (const request of [
      { hosts: [] },
      { hosts: ["exa mple.test"] },
      { hosts: ["a..test"] },
      { hosts: ["a.test.."] },
      { hosts: ["."] },
      { hosts: ["-a.test"] },
      { hosts: ["a.*.test"] },
      { hosts: ["a.test"], validityDays: 0 },
    ]) {
      await expect(issueLeafCertificate(request)).rejects.toMatchObject({
        name: "CertificateError",
        code: "x509.invalid_request",
      });
    }
  });

  it("refuses a CA key type it cannot sign with", async () => {
    const { privateKey } = generateKeyPairSync("ed25519");
    const keyPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();

    await expect(createLeafIssuer({ certPem: ca.certPem, keyPem })).rejects.toBeInstanceOf(
      CertificateError,
    );
  });

  it("switches to GeneralizedTime for dates from 2050 on (RFC 5280 §4.1.2.5)", async () => {
    const issueLeafCertificate = await createLeafIssuer(ca, { clock: at("2049-12-20T08:30:15Z") });
    const leaf = await issueLeafCertificate({ hosts: ["late.example.test"] });
    const certificate = new X509Certificate(leaf.certPem);
    expect(new Date(certificate.validFrom)).toEqual(new Date("2049-12-20T07:30:15Z"));
    expect(new Date(certificate.validTo)).toEqual(new Date("2050-01-19T08:30:15Z"));
    expect(certificate.raw.includes(Buffer.from("20500119083015Z", "ascii"))).toBe(true);
    expect(certificate.raw.includes(Buffer.from("491220073015Z", "ascii"))).toBe(true);
  });

  it("writes every IPv6 form into the SAN as its 16 bytes", async () => {
    const issueLeafCertificate = await createLeafIssuer(ca);
    const leaf = await issueLeafCertificate({
      hosts: ["2001:db8::1", "::", "fe80::1:2:3:4", "::ffff:10.0.0.1", "1:2:3:4:5:6:7:8"],
    });
    expect(new X509Certificate(leaf.certPem).subjectAltName).toBe(
      [
        "IP Address:2001:DB8:0:0:0:0:0:1",
        "IP Address:0:0:0:0:0:0:0:0",
        "IP Address:FE80:0:0:0:1:2:3:4",
        "IP Address:0:0:0:0:0:FFFF:A00:1",
        "IP Address:1:2:3:4:5:6:7:8",
      ].join(", "),
    );
  });

  it("carries the leaf extensions a TLS client checks, parsed back by an independent decoder", async () => {
    const issueLeafCertificate = await createLeafIssuer(ca);
    const leaf = await issueLeafCertificate({ hosts: ["a.example.test"] });
    const parsed = new x509.X509Certificate(leaf.certPem);
    const caCertificate = new x509.X509Certificate(ca.certPem);

    // TBSCertificate opens with `[0] INTEGER 2`: version 3 (after the two SEQUENCE headers).
    const raw = new X509Certificate(leaf.certPem).raw;
    expect(raw.subarray(0, 16).includes(Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02]))).toBe(true);
    expect(parsed.signatureAlgorithm).toMatchObject({ name: "ECDSA", hash: { name: "SHA-256" } });
    expect(parsed.issuer).toBe(caCertificate.subject);
    const basic = parsed.getExtension(x509.BasicConstraintsExtension);
    expect(basic?.ca).toBe(false);
    expect(basic?.critical).toBe(true);
    const usage = parsed.getExtension(x509.KeyUsagesExtension);
    expect(usage?.usages).toBe(x509.KeyUsageFlags.digitalSignature);
    expect(usage?.critical).toBe(true);
    const authority = parsed.getExtension(x509.AuthorityKeyIdentifierExtension);
    const caKeyId = caCertificate.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    expect(authority?.keyId).toBe(caKeyId);
    expect(parsed.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId).toMatch(/^[0-9a-f]+$/);
    expect(await parsed.verify({ publicKey: caCertificate.publicKey, signatureOnly: true })).toBe(
      true,
    );
  });

  it("signs with P-384 and RSA CA keys too", async () => {
    for (const options of [
      { type: "ec", curve: "secp384r1", algorithm: "ECDSA", hash: "SHA-384" },
      { type: "rsa", curve: undefined, algorithm: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
    ] as const) {
      const pair =
        options.type === "ec"
          ? generateKeyPairSync("ec", { namedCurve: options.curve })
          : generateKeyPairSync("rsa", { modulusLength: 2048 });
      const keyPem = pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
      const caCert = await selfSignedCa(keyPem);
      const issueLeafCertificate = await createLeafIssuer({ certPem: caCert, keyPem });
      const leaf = await issueLeafCertificate({ hosts: ["b.example.test"] });
      const certificate = new X509Certificate(leaf.certPem);
      expect(certificate.verify(new X509Certificate(caCert).publicKey)).toBe(true);
      expect(new x509.X509Certificate(leaf.certPem).signatureAlgorithm).toMatchObject({
        name: options.algorithm,
        hash: { name: options.hash },
      });
    }
  });
});

/** A CA certificate for an existing key, made with @peculiar/x509 (independent of our encoder). */
async function selfSignedCa(keyPem: string): Promise<string> {
  const key = createPrivateKey(keyPem);
  const isRsa = key.asymmetricKeyType === "rsa";
  const algorithm = isRsa
    ? { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }
    : { name: "ECDSA", namedCurve: "P-384", hash: "SHA-384" };
  const privateKey = await webcrypto.subtle.importKey(
    "pkcs8",
    key.export({ type: "pkcs8", format: "der" }),
    algorithm,
    true,
    ["sign"],
  );
  const publicKey = await webcrypto.subtle.importKey(
    "spki",
    createPublicKeyDer(key),
    algorithm,
    true,
    ["verify"],
  );
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: "01",
      name: "CN=Other CA",
      notBefore: new Date(Date.now() - 3_600_000),
      notAfter: new Date(Date.now() + 86_400_000),
      signingAlgorithm: algorithm,
      keys: { privateKey, publicKey },
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        await x509.SubjectKeyIdentifierExtension.create(publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );
  return certificate.toString("pem");
}

function createPublicKeyDer(key: ReturnType<typeof createPrivateKey>): Buffer {
  return createPublicKey(key).export({ type: "spki", format: "der" });
}
