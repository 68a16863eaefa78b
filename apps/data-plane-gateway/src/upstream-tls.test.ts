import { rootCertificates } from "node:tls";
import { createTestCa } from "@keyway/test-harness";
import { describe, expect, it } from "vitest";
import { upstreamCaCertificates, upstreamTlsFailureReason } from "./upstream-tls";

function nodeError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

describe("upstreamCaCertificates", () => {
  it("adds the operator's CAs to Node's roots instead of replacing them", async () => {
    const { certPem } = await createTestCa({ commonName: "Internal CA" });
    const trusted = upstreamCaCertificates([certPem]);
    expect(trusted).toHaveLength(rootCertificates.length + 1);
    expect(trusted).toEqual(expect.arrayContaining([...rootCertificates, certPem]));
  });

  it("leaves Node's defaults alone without extra CAs", () => {
    expect(upstreamCaCertificates(undefined)).toBeUndefined();
    expect(upstreamCaCertificates([])).toBeUndefined();
  });
});

describe("upstreamTlsFailureReason", () => {
  it("names certificate and handshake failures by Node's code and message", () => {
    const failures = [
      ["UNABLE_TO_VERIFY_LEAF_SIGNATURE", "unable to verify the first certificate"],
      ["DEPTH_ZERO_SELF_SIGNED_CERT", "self-signed certificate"],
      ["SELF_SIGNED_CERT_IN_CHAIN", "self-signed certificate in certificate chain"],
      ["CERT_HAS_EXPIRED", "certificate has expired"],
      ["ERR_TLS_CERT_ALTNAME_INVALID", "Hostname/IP does not match certificate's altnames"],
      ["ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE", "sslv3 alert handshake failure\n"],
      ["ERR_SSL_WRONG_VERSION_NUMBER", "wrong version number"],
    ];
    for (const [code = "", message = ""] of failures) {
      expect(upstreamTlsFailureReason(nodeError(code, message))).toBe(`${code}: ${message.trim()}`);
    }
  });

  it("leaves connection errors, timeouts and errors without a code alone", () => {
    for (const code of [
      "ECONNREFUSED",
      "ECONNRESET",
      "UND_ERR_SOCKET",
      "UND_ERR_CONNECT_TIMEOUT",
    ]) {
      expect(upstreamTlsFailureReason(nodeError(code, "x")), code).toBeNull();
    }
    expect(upstreamTlsFailureReason(new Error("plain"))).toBeNull();
  });
});
