import type { IncomingMessage, ServerResponse } from "node:http";
import {
  type Clock,
  createGatewayAssertionVerifier,
  createSessionTokenSigner,
  generateSigningKeyPair,
  type SigningKeyPair,
} from "@keyway/crypto";
import { type CompiledRuntimePlan, planDigest } from "@keyway/integrations-core";
import { type RunningServer, startHttpServer } from "@keyway/test-harness";
import { z } from "zod";

/**
 * A stand-in for the control plane's internal API, for this package's tests only: plans by
 * digest, credential resolution, the SSE invalidation feed and the session JWKS, with real signed
 * session tokens and real gateway-assertion verification (each assertion accepted once). System
 * tests run the real control plane instead.
 */

export const TEST_ISSUER = "keyway-test";
export const TEST_SESSION_AUDIENCE = "keyway-gateway-test";
export const TEST_INTERNAL_AUDIENCE = "keyway-internal-test";
export const TEST_GATEWAY_ID = "gateway-test";

export interface FakeCredential {
  value: string;
  expiresAt?: Date | null;
  credentialVersion?: number;
}

export interface FakeControlPlane {
  url: string;
  /** The key pair the gateway under test must sign its assertions with. */
  gatewayKey: SigningKeyPair;
  /** Serves `plan` under its digest, or under `servedAs` (a plan that does not match it). */
  addPlan(plan: CompiledRuntimePlan, servedAs?: string): string;
  /** What `resolve` answers for a route id (replace to rotate). */
  setCredential(routeId: string, credential: FakeCredential | { error: number }): void;
  issueToken(options: { sessionId: string; planDigest: string; expiresAt?: Date }): Promise<string>;
  /**
   * Marks a session revoked (resolve answers 403 `SESSION_NOT_LIVE`) and publishes
   * `session.revoked`, unless `publish` is false (an event the gateway never sees).
   */
  revokeSession(sessionId: string, options?: { publish?: boolean }): void;
  publish(event: Record<string, unknown>): void;
  /** Closes every open event stream (the gateway should reconnect). */
  dropEventStreams(): void;
  /** Credential resolutions served, by route id. */
  resolutions: Map<string, number>;
  /** Requests refused for a missing, invalid or replayed assertion. */
  refusedAssertions: number;
  close(): Promise<void>;
}

const systemClock: Clock = { now: () => new Date() };
const resolveBodySchema = z.object({ sessionId: z.string(), routeId: z.string() });

export async function startFakeControlPlane(): Promise<FakeControlPlane> {
  const sessionKey = await generateSigningKeyPair();
  const gatewayKey = await generateSigningKeyPair();
  const signer = createSessionTokenSigner({
    keys: [{ privateJwk: sessionKey.privateJwk, kid: sessionKey.kid }],
    currentKid: sessionKey.kid,
    issuer: TEST_ISSUER,
    audience: TEST_SESSION_AUDIENCE,
    clock: systemClock,
  });
  // Signs tokens that are already expired (a signer refuses an expiry in its own past).
  const pastSigner = createSessionTokenSigner({
    keys: [{ privateJwk: sessionKey.privateJwk, kid: sessionKey.kid }],
    currentKid: sessionKey.kid,
    issuer: TEST_ISSUER,
    audience: TEST_SESSION_AUDIENCE,
    clock: { now: () => new Date(Date.now() - 24 * 3600_000) },
  });
  const assertions = createGatewayAssertionVerifier({
    trusted: [{ gatewayId: TEST_GATEWAY_ID, publicJwk: gatewayKey.publicJwk }],
    audience: TEST_INTERNAL_AUDIENCE,
    clock: systemClock,
  });
  const plans = new Map<string, CompiledRuntimePlan>();
  const credentials = new Map<string, FakeCredential | { error: number }>();
  const revoked = new Set<string>();
  const streams = new Set<ServerResponse>();
  const resolutions = new Map<string, number>();
  let refusedAssertions = 0;

  function json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  }

  async function readJson(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk);
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? "/";
    if (url === "/.well-known/jwks.json") {
      json(res, 200, signer.jwks());
      return;
    }
    const header = req.headers.authorization ?? "";
    try {
      await assertions.verify(header.startsWith("Bearer ") ? header.slice(7) : "");
    } catch {
      refusedAssertions++;
      json(res, 401, { error: { code: "unauthorized", message: "bad gateway assertion" } });
      return;
    }

    const planMatch = /^\/internal\/v1\/plans\/([^/]+)$/.exec(url);
    if (req.method === "GET" && planMatch) {
      const plan = plans.get(decodeURIComponent(planMatch[1] ?? ""));
      if (plan === undefined) json(res, 404, { error: { code: "not_found", message: "no plan" } });
      else json(res, 200, plan);
      return;
    }
    if (req.method === "POST" && url === "/internal/v1/credentials/resolve") {
      const body = resolveBodySchema.parse(await readJson(req));
      resolutions.set(body.routeId, (resolutions.get(body.routeId) ?? 0) + 1);
      if (revoked.has(body.sessionId)) {
        json(res, 403, { error: { code: "SESSION_NOT_LIVE", message: "session is not live" } });
        return;
      }
      const credential = credentials.get(body.routeId);
      if (credential === undefined) {
        json(res, 403, { error: { code: "ROUTE_NOT_IN_PLAN", message: "no such route" } });
      } else if ("error" in credential) {
        json(res, credential.error, {
          error: {
            code: "credential_unavailable",
            message: "the credential could not be resolved",
          },
        });
      } else {
        json(res, 200, {
          value: credential.value,
          expiresAt: credential.expiresAt ? credential.expiresAt.toISOString() : null,
          credentialVersion: credential.credentialVersion ?? 1,
        });
      }
      return;
    }
    if (req.method === "GET" && url === "/internal/v1/events") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
      // As the control plane sends them: `ready` first, then `invalidation` events.
      res.write(`event: ready\ndata: ${JSON.stringify({ gatewayId: TEST_GATEWAY_ID })}\n\n`);
      streams.add(res);
      res.once("close", () => streams.delete(res));
      return;
    }
    json(res, 404, { error: { code: "not_found", message: "no such endpoint" } });
  }

  const server: RunningServer = await startHttpServer(handle);
  let closing: Promise<void> | undefined;

  function publish(event: Record<string, unknown>): void {
    for (const stream of streams) {
      stream.write(`event: invalidation\ndata: ${JSON.stringify(event)}\n\n`);
    }
  }

  return {
    url: server.url,
    gatewayKey,
    addPlan(plan, servedAs) {
      const digest = servedAs ?? planDigest(plan);
      plans.set(digest, plan);
      return digest;
    },
    setCredential(routeId, credential) {
      credentials.set(routeId, credential);
    },
    issueToken({ sessionId, planDigest: digest, expiresAt }) {
      const expired = expiresAt !== undefined && expiresAt.getTime() <= Date.now();
      return (expired ? pastSigner : signer).sign({
        sessionId,
        organizationId: "org_test",
        planDigest: digest,
        profileVersionId: "pv_test",
        expiresAt: expiresAt ?? new Date(Date.now() + 15 * 60_000),
      });
    },
    revokeSession(sessionId, options) {
      revoked.add(sessionId);
      if (options?.publish !== false) publish({ type: "session.revoked", sessionId });
    },
    publish,
    dropEventStreams() {
      for (const stream of streams) stream.destroy();
      streams.clear();
    },
    resolutions,
    get refusedAssertions() {
      return refusedAssertions;
    },
    close() {
      for (const stream of streams) stream.destroy();
      closing ??= server.close();
      return closing;
    },
  };
}
