import { X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import { type ConnectionOptions, createSecureContext, type TLSSocket } from "node:tls";

/**
 * How `pnpm bench:storm`'s sandboxes (`storm-sandboxes.ts`) verify the gateway's leaf: the same
 * checks as `tls.connect` with `ca` set, without Node's `getPeerCertificate(true)`.
 *
 * `tls.connect` checks the host name with `checkServerIdentity(host, getPeerCertificate(true))`,
 * and that call turns the peer's chain into JavaScript objects (every field, fingerprints, the
 * public key). On Node 20 (OpenSSL 3.0) it cost 556 µs of a sandbox's CPU per connection in the
 * storm's profile (Node 24: 204 µs) — work a sandbox on its own machine does, but here on the
 * gateway's two cores, and work no TLS client outside Node does: curl or Python verify in C.
 * So the sandboxes connect with a context that trusts no CA (OpenSSL's chain building stops at
 * once, Node skips the host name check since the chain already failed, `rejectUnauthorized` is
 * off so the handshake completes) and check, before they send a byte of their request:
 * - the leaf was issued by the gateway CA (issuer name and key identifier) and its signature
 *   verifies with the CA's key;
 * - the CA is a CA, and the leaf and the CA are both within their validity;
 * - the leaf names the host (`X509_check_host`, RFC 6125, as `checkServerIdentity`), and allows
 *   `serverAuth` when it lists extended key usages.
 * That the server holds the leaf's key is TLS's own check (`CertificateVerify`), made either way.
 */
export interface GatewayTrust {
  /** What `tls.connect` is given: the shared context, and no rejection by Node itself. */
  readonly connectOptions: Pick<ConnectionOptions, "secureContext" | "rejectUnauthorized">;
  /** Throws unless the peer's leaf is the gateway CA's, current, for `hostname`. */
  check(socket: TLSSocket, hostname: string, nowMs?: number): void;
}

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";

function within(certificate: X509Certificate, nowMs: number): boolean {
  return Date.parse(certificate.validFrom) <= nowMs && nowMs <= Date.parse(certificate.validTo);
}

export function gatewayTrust(caPem: string): GatewayTrust {
  const ca = new X509Certificate(caPem);
  const caKey = ca.publicKey;
  if (!ca.ca) throw new Error("the gateway CA certificate is not a CA");
  // One context for every connection (a context per connection costs ≈ 1 ms of CPU); no CA in
  // it, so OpenSSL's own chain check fails fast and Node never builds the chain's objects.
  const secureContext = createSecureContext({ ca: [] });
  return {
    connectOptions: { secureContext, rejectUnauthorized: false },
    check(socket, hostname, nowMs = Date.now()) {
      const leaf = socket.getPeerX509Certificate();
      if (leaf === undefined) throw new Error("the gateway sent no certificate");
      if (!leaf.checkIssued(ca) || !leaf.verify(caKey)) {
        throw new Error("the gateway's certificate is not from the gateway CA");
      }
      if (!within(leaf, nowMs) || !within(ca, nowMs)) {
        throw new Error("the gateway's certificate is not valid now");
      }
      const named = isIP(hostname) === 0 ? leaf.checkHost(hostname) : leaf.checkIP(hostname);
      if (named === undefined)
        throw new Error(`the gateway's certificate does not name ${hostname}`);
      const usages = leaf.keyUsage;
      if (usages !== undefined && usages.length > 0 && !usages.includes(SERVER_AUTH)) {
        throw new Error("the gateway's certificate is not for TLS servers");
      }
    },
  };
}
