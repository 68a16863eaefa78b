import {
  type KeywayConfig,
  readCertificateBundle,
  readSettingFile,
  requireSetting,
} from "@keyway/config";
import { createSessionTokenVerifier, parsePrivateKey } from "@keyway/crypto";
import { createLogger, createTracing, type Tracing } from "@keyway/observability";
import { createLeafIssuer } from "@keyway/x509";
import { createBatchedLineWriter } from "./batched-line-writer";
import { type ControlPlaneClient, createControlPlaneClient } from "./control-plane-client";
import type { GatewayDeps } from "./gateway";
import { remoteSessionKeys } from "./session-keys";

/**
 * Everything `createGateway` needs, built from the loaded configuration: the gateway identity
 * towards the control plane, the control plane's session JWKS, the deployment CA, and the extra
 * CAs trusted for upstreams. Files are read here, at start, so a missing or wrong one is a config
 * error naming its key rather than a failure on some later request.
 */
export async function gatewayDepsFromConfig(
  config: KeywayConfig,
): Promise<GatewayDeps & { controlPlane: ControlPlaneClient; tracing: Tracing }> {
  const { gateway } = config;
  const identity = requireSetting(gateway.identity, "gateway.identity");
  const keyText =
    identity.private_key ??
    (await readSettingFile(
      requireSetting(identity.private_key_path, "gateway.identity.private_key_path"),
      "gateway.identity.private_key_path",
    ));
  const key = await parsePrivateKey(keyText);
  const clock = { now: () => new Date() };
  const logLines = createBatchedLineWriter((chunk) => process.stdout.write(chunk));
  // The lines of the last loop turn are still written when the process exits.
  process.once("exit", logLines.flush);
  const logger = createLogger({
    service: "data-plane-gateway",
    level: config.log.level,
    write: logLines.write,
  });

  const tracing = createTracing({
    service: "data-plane-gateway",
    traces: config.telemetry.traces,
    otlpEndpoint: config.telemetry.otlp_endpoint,
  });

  const controlPlane = createControlPlaneClient({
    baseUrl: gateway.control_plane_url,
    identity: { gatewayId: identity.gateway_id, privateJwk: key.privateJwk, kid: key.kid },
    audience: config.internal.audience,
    clock,
    logger,
  });
  const jwks = remoteSessionKeys(gateway.control_plane_url);
  const verifier = createSessionTokenVerifier({
    issuer: config.sessions.issuer,
    audience: config.sessions.audience,
    getKey: jwks,
    clock,
  });
  const [certPem, keyPem] = await Promise.all([
    readSettingFile(gateway.ca_cert_path, "gateway.ca_cert_path"),
    readSettingFile(gateway.ca_key_path, "gateway.ca_key_path"),
  ]);
  const issueLeaf = await createLeafIssuer({ certPem, keyPem }, { clock });
  const upstreamCa =
    gateway.upstream_ca_path === undefined
      ? undefined
      : await readCertificateBundle(gateway.upstream_ca_path, "gateway.upstream_ca_path");

  return {
    controlPlane,
    verifier,
    loadJwks: () => jwks.reload(),
    issueLeaf,
    clock,
    logger,
    tracing,
    ...(tracing.tracer ? { tracer: tracing.tracer } : {}),
    settings: {
      caches: {
        planBytes: gateway.caches.plans_mb * 1024 * 1024,
        sessionBytes: gateway.caches.sessions_mb * 1024 * 1024,
      },
      liveness: {
        recheckMs: gateway.liveness.recheck_seconds * 1000,
        outageGraceMs: gateway.liveness.outage_grace_seconds * 1000,
        revocationRetentionMs: config.sessions.max_lifetime_seconds * 1000,
      },
      egress: {
        defaultPolicy: gateway.egress.default_policy,
        allowHosts: gateway.egress.allow_hosts,
        allowPrivateNetworks: gateway.egress.allow_private_networks,
      },
      upstream: {
        connectTimeoutMs: gateway.timeouts.connect_ms,
        headersTimeoutMs: gateway.timeouts.headers_ms,
        bodyIdleTimeoutMs: gateway.timeouts.body_idle_ms,
        maxRetries: gateway.retries.max_retries,
        plainHttpClient: gateway.plain_http_client === "keyway",
        ...(upstreamCa === undefined ? {} : { ca: upstreamCa }),
      },
      rateLimit:
        gateway.rate_limit.requests_per_second > 0
          ? {
              requestsPerSecond: gateway.rate_limit.requests_per_second,
              burst: gateway.rate_limit.burst,
            }
          : undefined,
      circuitBreaker:
        gateway.circuit_breaker.failure_threshold > 0
          ? {
              failureThreshold: gateway.circuit_breaker.failure_threshold,
              windowMs: gateway.circuit_breaker.window_ms,
              coolDownMs: gateway.circuit_breaker.cool_down_ms,
            }
          : undefined,
    },
  };
}
