import { generateKeyPairSync } from "node:crypto";
import { type EgressRoute, OAuth2Error } from "@keyway/integrations-core";
import { exportPKCS8, exportSPKI, generateKeyPair, importSPKI, jwtVerify } from "jose";
import { HttpResponse, http } from "msw";
import { setupServer } from "msw/node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { githubCloudTargetConfigSchema } from "../github-cloud/target-config-schema";
import { githubEnterpriseServerTargetConfigSchema } from "../github-enterprise-server/target-config-schema";
import { githubBindingConfigSchema } from "./binding-config-schema";
import {
  createInstallationToken,
  githubAppInstallationTokenResolver,
} from "./installation-token-resolver";
import type { GitHubTargetConfig } from "./target-config";
import type { GitHubTargetSecrets } from "./target-secret-schema";

// GitHub hands out app keys as PKCS#1 PEM; that is the format the resolver must load.
const { privateKey: pkcs1Pem, publicKey: spkiPem } = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  privateKeyEncoding: { type: "pkcs1", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" },
});

const now = new Date("2025-06-01T12:00:00Z");
const nowSeconds = now.getTime() / 1000;
const clock = { now: () => now };
// Deliberately not the classic 40-character `ghs_` shape: the resolver must not care.
const mintedToken = `ghs_${"Zx9".repeat(60)}`;

interface Received {
  url: string;
  headers: Record<string, string>;
  body: unknown;
  claims: Record<string, unknown>;
}

const server = setupServer();
beforeAll(() => server.listen({ onUnhandledRequest: "error" }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

/** Stands in for GitHub: checks the app JWT against the app's public key, records the request. */
function acceptTokenRequests(url: string, publicKeyPem = spkiPem): Received[] {
  const received: Received[] = [];
  server.use(
    http.post(url, async ({ request }) => {
      const authorization = request.headers.get("authorization") ?? "";
      const jwt = authorization.replace(/^Bearer /, "");
      const key = await importSPKI(publicKeyPem, "RS256");
      const { payload, protectedHeader } = await jwtVerify(jwt, key, {
        algorithms: ["RS256"],
        currentDate: now,
      });
      expect(protectedHeader.alg).toBe("RS256");
      received.push({
        url: request.url,
        headers: Object.fromEntries(request.headers),
        body: await request.json(),
        claims: payload,
      });
      return HttpResponse.json(
        {
          token: mintedToken,
          expires_at: "2025-06-01T13:00:00Z",
          permissions: { contents: "read" },
        },
        { status: 201 },
      );
    }),
  );
  return received;
}

const route: EgressRoute = {
  id: "bind_1.route.0",
  bindingId: "bind_1",
  match: { hosts: ["api.github.com"] },
  upstream: { baseUrl: "https://api.github.com" },
  auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
  credential: {
    connectionId: "conn_1",
    secretType: "github_installation_token",
    resolver: "github_app_installation_token",
  },
};

function resolverContext(options: {
  config?: GitHubTargetConfig;
  secrets?: GitHubTargetSecrets;
  installationId?: string;
  binding?: unknown;
}) {
  return {
    target: {
      id: "tgt_1",
      targetKey: "github-cloud",
      config: options.config ?? githubCloudTargetConfigSchema.parse({}),
      secrets: options.secrets ?? {
        appId: "123456",
        clientId: "Iv23liClient",
        appPrivateKeyPem: pkcs1Pem,
      },
    },
    connection: {
      id: "conn_1",
      methodId: "github-app",
      methodKind: "github-app-installation" as const,
      config: {},
      ...(options.installationId !== undefined
        ? { externalSubjectId: options.installationId }
        : {}),
    },
    binding: {
      id: "bind_1",
      config: githubBindingConfigSchema.parse(
        options.binding ?? {
          repositories: ["octo-org/widgets", "octo-org/gadgets"],
          permissions: { contents: "write", pull_requests: "write", metadata: "read" },
        },
      ),
    },
    route,
    fetch: globalThis.fetch,
    clock,
  };
}

const CLOUD_URL = "https://api.github.com/app/installations/4242/access_tokens";

describe("github_app_installation_token resolver", () => {
  it("signs an app JWT with the client ID and exchanges it for a narrowed installation token", async () => {
    const received = acceptTokenRequests(CLOUD_URL);
    const credential = await githubAppInstallationTokenResolver.resolve(
      resolverContext({ installationId: "4242" }),
    );

    expect(credential).toEqual({ value: mintedToken, expiresAt: new Date("2025-06-01T13:00:00Z") });
    expect(received).toHaveLength(1);
    const [request] = received;
    expect(request?.claims).toEqual({
      iss: "Iv23liClient",
      iat: nowSeconds - 60,
      exp: nowSeconds + 540,
    });
    expect(request?.body).toEqual({
      repositories: ["widgets", "gadgets"],
      permissions: { contents: "write", pull_requests: "write", metadata: "read" },
    });
    expect(request?.headers).toMatchObject({
      accept: "application/vnd.github+json",
      "x-github-api-version": "2022-11-28",
      "content-type": "application/json",
    });
  });

  it("falls back to the app ID as issuer on GitHub.com when no client ID is configured", async () => {
    const received = acceptTokenRequests(CLOUD_URL);
    await githubAppInstallationTokenResolver.resolve(
      resolverContext({
        installationId: "4242",
        secrets: { appId: "123456", appPrivateKeyPem: pkcs1Pem },
      }),
    );
    expect(received[0]?.claims.iss).toBe("123456");
  });

  it("uses the app ID as issuer and the /api/v3 root on GitHub Enterprise Server", async () => {
    const received = acceptTokenRequests(
      "https://ghe.example.com/api/v3/app/installations/9/access_tokens",
    );
    const credential = await githubAppInstallationTokenResolver.resolve(
      resolverContext({
        installationId: "9",
        config: githubEnterpriseServerTargetConfigSchema.parse({
          webBaseUrl: "https://ghe.example.com",
        }),
        binding: { repositories: ["platform/deploy"] },
      }),
    );
    expect(credential.value).toBe(mintedToken);
    expect(received[0]?.claims.iss).toBe("123456");
    expect(received[0]?.body).toEqual({
      repositories: ["deploy"],
      permissions: { contents: "read", metadata: "read" },
    });
  });

  it("loads a PKCS#8 key as well", async () => {
    const pair = await generateKeyPair("RS256", { extractable: true });
    const received = acceptTokenRequests(CLOUD_URL, await exportSPKI(pair.publicKey));
    await githubAppInstallationTokenResolver.resolve(
      resolverContext({
        installationId: "4242",
        secrets: { clientId: "Iv23liClient", appPrivateKeyPem: await exportPKCS8(pair.privateKey) },
      }),
    );
    expect(received).toHaveLength(1);
  });

  it("mints an un-narrowed token without a request body for connection-level actions", async () => {
    let body: string | undefined;
    server.use(
      http.post(CLOUD_URL, async ({ request }) => {
        body = await request.text();
        return HttpResponse.json(
          { token: "t", expires_at: "2025-06-01T13:00:00Z" },
          { status: 201 },
        );
      }),
    );
    const ctx = resolverContext({});
    await createInstallationToken({ target: ctx.target, installationId: "4242", fetch, clock });
    expect(body).toBe("");
  });

  async function failureOf(promise: Promise<unknown>): Promise<OAuth2Error> {
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!(error instanceof OAuth2Error))
      throw new Error(`expected an OAuth2Error, got ${String(error)}`);
    return error;
  }

  it("classifies 5xx, rate limits and network failures as temporary", async () => {
    server.use(
      http.post(CLOUD_URL, () => HttpResponse.json({ message: "Server Error" }, { status: 503 })),
    );
    const unavailable = await failureOf(
      githubAppInstallationTokenResolver.resolve(resolverContext({ installationId: "4242" })),
    );
    expect([unavailable.kind, unavailable.code, unavailable.status]).toEqual([
      "temporary",
      "http_503",
      503,
    ]);

    server.use(
      http.post(CLOUD_URL, () =>
        HttpResponse.json(
          { message: "API rate limit exceeded" },
          { status: 403, headers: { "x-ratelimit-remaining": "0" } },
        ),
      ),
    );
    const limited = await failureOf(
      githubAppInstallationTokenResolver.resolve(resolverContext({ installationId: "4242" })),
    );
    expect([limited.kind, limited.code]).toEqual(["temporary", "http_403"]);

    server.use(http.post(CLOUD_URL, () => HttpResponse.error()));
    const network = await failureOf(
      githubAppInstallationTokenResolver.resolve(resolverContext({ installationId: "4242" })),
    );
    expect([network.kind, network.code]).toEqual(["temporary", "network_error"]);
  });

  it("classifies 401, 404 and 422 as permanent", async () => {
    for (const status of [401, 404, 422]) {
      server.use(
        http.post(CLOUD_URL, () => HttpResponse.json({ message: "Not Found" }, { status })),
      );
      const error = await failureOf(
        githubAppInstallationTokenResolver.resolve(resolverContext({ installationId: "4242" })),
      );
      expect([error.kind, error.code]).toEqual(["permanent", `http_${status}`]);
    }
  });

  it("treats a success without a token or expiry as a temporary provider fault", async () => {
    server.use(http.post(CLOUD_URL, () => HttpResponse.json({ token: "t" }, { status: 201 })));
    const error = await failureOf(
      githubAppInstallationTokenResolver.resolve(resolverContext({ installationId: "4242" })),
    );
    expect([error.kind, error.code]).toEqual(["temporary", "invalid_response"]);
  });

  it("fails permanently, without calling GitHub, on missing or broken configuration", async () => {
    const missingId = await failureOf(
      githubAppInstallationTokenResolver.resolve(resolverContext({})),
    );
    expect([missingId.kind, missingId.code]).toEqual(["permanent", "missing_installation_id"]);

    const noKey = await failureOf(
      githubAppInstallationTokenResolver.resolve(
        resolverContext({ installationId: "4242", secrets: { clientId: "Iv23liClient" } }),
      ),
    );
    expect([noKey.kind, noKey.code]).toEqual(["permanent", "missing_app_credentials"]);

    const badKey = await failureOf(
      githubAppInstallationTokenResolver.resolve(
        resolverContext({
          installationId: "4242",
          secrets: { appId: "1", appPrivateKeyPem: "not a key" },
        }),
      ),
    );
    expect([badKey.kind, badKey.code]).toEqual(["permanent", "invalid_app_private_key"]);
    expect(badKey.message).not.toContain("not a key");
  });
});
