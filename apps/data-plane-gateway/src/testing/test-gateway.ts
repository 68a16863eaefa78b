import type { Server } from "node:http";
import { createSessionTokenVerifier } from "@keyway/crypto";
import {
  createMemoryLogger,
  createTracing,
  type Logger,
  type SpanExporter,
} from "@keyway/observability";
import type { TestCa } from "@keyway/test-harness";
import { createLeafIssuer } from "@keyway/x509";
import { createRemoteJWKSet } from "jose";
import {
  type ControlPlaneClient,
  type ControlPlaneClientOptions,
  createControlPlaneClient,
} from "../control-plane-client";
import { createGateway, type Gateway, type GatewaySettings } from "../gateway";
import type { ResolveHost } from "../pipeline/authorize";
import {
  TEST_GATEWAY_ID,
  TEST_INTERNAL_AUDIENCE,
  TEST_ISSUER,
  TEST_SESSION_AUDIENCE,
  type TestControlPlane,
} from "./control-plane-stack";

/** A gateway listening on free loopback ports, wired to a test control plane (tests only). */
export interface TestGateway {
  gateway: Gateway;
  controlPlane: ControlPlaneClient;
  proxyUrl: string;
  proxyPort: number;
  adminUrl: string;
  logger: Logger & { lines: string[] };
  /** `http://session:<token>@127.0.0.1:<port>` */
  proxyUrlFor(token: string): string;
  close(): Promise<void>;
}

export interface TestGatewayOptions {
  controlPlane: TestControlPlane;
  /** Signs intercepted leaves; clients must trust its certificate. */
  gatewayCa: TestCa;
  /** Trusted for https upstreams. */
  upstreamCa?: TestCa;
  egress?: Partial<GatewaySettings["egress"]>;
  resolveHost?: ResolveHost;
  credentials?: GatewaySettings["credentials"];
  upstream?: Partial<GatewaySettings["upstream"]>;
  rateLimit?: GatewaySettings["rateLimit"];
  circuitBreaker?: GatewaySettings["circuitBreaker"];
  liveness?: GatewaySettings["liveness"];
  /** The gateway's spans go here (traces are off without one). */
  spanExporter?: SpanExporter;
  /** Where the gateway reaches the control plane, when not at its own URL (e.g. a proxy). */
  controlPlaneUrl?: string;
  /**
   * Client settings; by default the event stream reconnects within 200 ms. `eventsBackoffMs:
   * undefined` gives the production backoff.
   */
  client?: Partial<
    Pick<ControlPlaneClientOptions, "requestTimeoutMs" | "circuit" | "eventsBackoffMs">
  >;
}

export async function startTestGateway(options: TestGatewayOptions): Promise<TestGateway> {
  const clock = { now: () => new Date() };
  const logger = createMemoryLogger();
  const controlPlaneUrl = options.controlPlaneUrl ?? options.controlPlane.url;
  const controlPlane = createControlPlaneClient({
    baseUrl: controlPlaneUrl,
    identity: {
      gatewayId: TEST_GATEWAY_ID,
      privateJwk: options.controlPlane.gatewayKey.privateJwk,
      kid: options.controlPlane.gatewayKey.kid,
    },
    audience: TEST_INTERNAL_AUDIENCE,
    clock,
    logger,
    eventsBackoffMs: { min: 20, max: 200 },
    ...options.client,
  });
  const jwks = createRemoteJWKSet(new URL(`${controlPlaneUrl}/.well-known/jwks.json`));
  const tracing = createTracing({
    service: "data-plane-gateway",
    traces: "off",
    ...(options.spanExporter ? { exporter: options.spanExporter } : {}),
  });
  const gateway = createGateway({
    controlPlane,
    verifier: createSessionTokenVerifier({
      issuer: TEST_ISSUER,
      audience: TEST_SESSION_AUDIENCE,
      getKey: jwks,
      clock,
    }),
    loadJwks: () => jwks.reload(),
    issueLeaf: await createLeafIssuer(options.gatewayCa, { clock }),
    clock,
    logger,
    ...(tracing.tracer ? { tracer: tracing.tracer } : {}),
    ...(options.resolveHost ? { resolveHost: options.resolveHost } : {}),
    settings: {
      egress: {
        defaultPolicy: "deny",
        allowHosts: [],
        allowPrivateNetworks: false,
        ...options.egress,
      },
      upstream: {
        connectTimeoutMs: 5_000,
        headersTimeoutMs: 30_000,
        bodyIdleTimeoutMs: 30_000,
        ...(options.upstreamCa ? { ca: [options.upstreamCa.certPem] } : {}),
        ...options.upstream,
      },
      ...(options.credentials ? { credentials: options.credentials } : {}),
      rateLimit: options.rateLimit,
      circuitBreaker: options.circuitBreaker,
      ...(options.liveness ? { liveness: options.liveness } : {}),
    },
  });
  await new Promise<void>((resolve) => gateway.proxyServer.listen(0, "127.0.0.1", resolve));
  await new Promise<void>((resolve) => gateway.adminServer.listen(0, "127.0.0.1", resolve));
  gateway.start();
  await gateway.ready();
  const proxyPort = portOf(gateway.proxyServer);
  const adminPort = portOf(gateway.adminServer);
  return {
    gateway,
    controlPlane,
    proxyUrl: `http://127.0.0.1:${proxyPort}`,
    proxyPort,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    logger,
    proxyUrlFor: (token) => `http://session:${token}@127.0.0.1:${proxyPort}`,
    async close() {
      await gateway.close();
      await controlPlane.close();
      await tracing.shutdown();
    },
  };
}

function portOf(server: Server): number {
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return address.port;
}
