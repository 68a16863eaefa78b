import { createPrivateKey, generateKeyPairSync, X509Certificate } from "node:crypto";
import { performance } from "node:perf_hooks";
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

  it("issues leaves quickly once prepared (printed, not asserted)", async () => {
    const issueLeafCertificate = await createLeafIssuer(ca);
    await issueLeafCertificate({ hosts: ["warm-up.test"] });
    const count = 200;
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      await issueLeafCertificate({ hosts: [`host-${i}.example.test`] });
    }
    const perLeafMs = (performance.now() - started) / count;
    console.log(`x509: ${perLeafMs.toFixed(3)} ms per leaf certificate (${count} issued)`);
    expect(perLeafMs).toBeGreaterThan(0);
  });
});
