import { createSecureContext, type SecureContext } from "node:tls";
import type { Clock } from "@keyway/crypto";
import type { IssueLeafCertificate } from "@keyway/x509";
import { LruCache } from "./lru-cache";

/**
 * TLS contexts for intercepted hosts: a leaf certificate per host from the deployment's gateway
 * CA (SPEC §7 "CONNECT"), issued once (single flight), reused until shortly before it expires.
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
    const leaf = await options.issue({ hosts: [hostname] });
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
