import { createSecureContext, type SecureContext } from "node:tls";
import type { Clock } from "@keyway/crypto";
import { CertificateError, type IssueLeafCertificate, type LeafCertificate } from "@keyway/x509";
import { GatewayError } from "./errors";
import { LruCache } from "./lru-cache";

/**
 * TLS contexts for intercepted hosts: a leaf certificate per host from the deployment's gateway
 * CA (SPEC §7 "CONNECT"), issued once (single flight), reused until shortly before it expires.
 * A host no certificate can name (the issuer refuses it) is the client's bad input: 400
 * `bad_request`, never a 500.
 */
export interface LeafContexts {
  secureContextFor(hostname: string): SecureContext | Promise<SecureContext>;
}

export interface LeafContextsOptions {
  issue: IssueLeafCertificate;
  clock: Clock;
  /** Reissue this long before `notAfter`. Default 1 day. */
  renewBeforeMs?: number;
  /** Hosts kept. Default 1,000. */
  maxEntries?: number;
}

interface CachedContext {
  context: SecureContext;
  renewAtMs: number;
}

export function createLeafContexts(options: LeafContextsOptions): LeafContexts {
  const renewBeforeMs = options.renewBeforeMs ?? 86_400_000;
  const cache = new LruCache<string, CachedContext>(options.maxEntries ?? 1_000);
  const issuing = new Map<string, Promise<SecureContext>>();

  async function issue(hostname: string): Promise<SecureContext> {
    let leaf: LeafCertificate;
    try {
      leaf = await options.issue({ hosts: [hostname] });
    } catch (error) {
      if (error instanceof CertificateError && error.code === "x509.invalid_request") {
        throw new GatewayError("bad_request", "no certificate can be issued for this host", {
          cause: error,
        });
      }
      throw error;
    }
    const context = createSecureContext({ cert: leaf.certPem, key: leaf.keyPem });
    cache.set(hostname, { context, renewAtMs: leaf.notAfter.getTime() - renewBeforeMs });
    return context;
  }

  return {
    secureContextFor(hostname) {
      const cached = cache.get(hostname);
      if (cached !== undefined && cached.renewAtMs > options.clock.now().getTime()) {
        return cached.context;
      }
      let pending = issuing.get(hostname);
      if (pending === undefined) {
        pending = issue(hostname).finally(() => issuing.delete(hostname));
        issuing.set(hostname, pending);
      }
      return pending;
    },
  };
}
