import {
  type CertificateClock,
  createCertificateAuthority,
  createLeafIssuer,
  type LeafCertificate,
  type LeafCertificateRequest,
} from "@keyway/x509";

export interface TestCa {
  certPem: string;
  keyPem: string;
  issueLeaf(request: LeafCertificateRequest): Promise<LeafCertificate>;
}

export interface CreateTestCaOptions {
  commonName?: string;
  clock?: CertificateClock;
}

/** A throwaway CA for tests: trust `certPem` in a client, serve leaves from `issueLeaf`. */
export async function createTestCa(options: CreateTestCaOptions = {}): Promise<TestCa> {
  const { commonName = "Keyway Test CA", clock } = options;
  const ca = await createCertificateAuthority({ commonName, clock });
  const issueLeaf = await createLeafIssuer(ca, { clock });
  return { ...ca, issueLeaf };
}
