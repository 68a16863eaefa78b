import { rootCertificates } from "node:tls";
import { describe, expect, it } from "vitest";
import { caBundle, systemRootsPem } from "./ca-bundle";

describe("CA bundle", () => {
  it("holds the system roots and the gateway CA", () => {
    const bundle = caBundle(
      "-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----",
      "GATEWAY",
    );
    expect(bundle).toContain("root\n-----END CERTIFICATE-----\n");
    expect(bundle.endsWith("GATEWAY\n")).toBe(true);
  });

  it("falls back to Node's root store when no system file exists, never to nothing", async () => {
    const roots = await systemRootsPem(["/nonexistent/ca.pem"]);
    expect(roots.source).toBe("node:tls rootCertificates");
    expect(roots.pem).toContain(rootCertificates[0]);
  });
});
