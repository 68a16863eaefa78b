import { createSecureContext, rootCertificates, type SecureContext } from "node:tls";
import { GatewayError } from "./errors";

/**
 * TLS towards route upstreams (SPEC §7): what the gateway trusts, and which failures are TLS
 * failures. The forward stage (undici) and the WebSocket relay (node:https) both use this module,
 * so an upstream is trusted, or refused, the same way on either path.
 */

/**
 * The CA certificates trusted for upstreams: Node's bundled roots (what it trusts by default)
 * plus the operator's extra CAs (`gateway.upstream_ca_path`). Undefined without extras, leaving
 * Node's defaults alone. The roots are listed explicitly because a `ca` option *replaces* Node's
 * default store instead of adding to it.
 */
export function upstreamCaCertificates(
  extraCa: readonly string[] | undefined,
): string[] | undefined {
  return extraCa === undefined || extraCa.length === 0
    ? undefined
    : [...rootCertificates, ...extraCa];
}

/**
 * One TLS context for every upstream connection, built once. Without it, each new connection
 * builds its own (`tls.connect` calls `createSecureContext` when given none): ≈ 0.2 ms of CPU
 * per upstream handshake, measured in the first-request storm (docs/benchmarks.md), and with
 * `ca` the ~150 root certificates would be parsed again each time. Without extra CAs the context
 * holds Node's default store (including `NODE_EXTRA_CA_CERTS`), as a per-connection one would.
 */
export function upstreamSecureContext(extraCa: readonly string[] | undefined): SecureContext {
  const ca = upstreamCaCertificates(extraCa);
  return createSecureContext(ca === undefined ? {} : { ca });
}

/** OpenSSL's certificate verification results, as Node names them in `error.code`. */
const CERTIFICATE_ERRORS: ReadonlySet<string> = new Set([
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_CRL",
  "UNABLE_TO_DECRYPT_CERT_SIGNATURE",
  "UNABLE_TO_DECRYPT_CRL_SIGNATURE",
  "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY",
  "CERT_SIGNATURE_FAILURE",
  "CRL_SIGNATURE_FAILURE",
  "CERT_NOT_YET_VALID",
  "CERT_HAS_EXPIRED",
  "CRL_NOT_YET_VALID",
  "CRL_HAS_EXPIRED",
  "ERROR_IN_CERT_NOT_BEFORE_FIELD",
  "ERROR_IN_CERT_NOT_AFTER_FIELD",
  "ERROR_IN_CRL_LAST_UPDATE_FIELD",
  "ERROR_IN_CRL_NEXT_UPDATE_FIELD",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "CERT_CHAIN_TOO_LONG",
  "CERT_REVOKED",
  "INVALID_CA",
  "PATH_LENGTH_EXCEEDED",
  "INVALID_PURPOSE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "HOSTNAME_MISMATCH",
]);

/**
 * The upstream's TLS was refused: its certificate did not verify (untrusted, expired, wrong
 * name), or the handshake failed (`ERR_SSL_*`: no common protocol or cipher, not TLS at all;
 * `ERR_TLS_*`). Returns the reason for the gateway log — Node's code and message, which name the
 * upstream's certificate and never a request header — or null for any other error. Resets during
 * a handshake stay connection errors (`ECONNRESET`): they may be transient.
 */
export function upstreamTlsFailureReason(error: Error): string | null {
  const code = "code" in error ? error.code : undefined;
  if (typeof code !== "string") return null;
  const tls =
    CERTIFICATE_ERRORS.has(code) || code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_");
  return tls ? `${code}: ${error.message.trim()}` : null;
}

/** What the sandbox gets; the reason stays in the gateway log. */
export function upstreamTlsError(cause: Error): GatewayError {
  return new GatewayError(
    "upstream_tls_error",
    "the upstream's TLS certificate or handshake was refused",
    { cause },
  );
}
