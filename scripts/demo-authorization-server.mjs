/**
 * A local, standards-compliant OAuth 2.0 authorization server for the README walkthrough and the
 * OAuth2 tests: `oidc-provider` (a certified OpenID Connect / OAuth 2.0 implementation) with one
 * confidential client, the authorization code grant with PKCE S256 required, refresh tokens
 * rotated on every use, the client credentials grant and RFC 7009 revocation (`/token/revocation`).
 * It also serves `GET /api/hello`, a protected resource that answers 200 only to a bearer access
 * token the server issued and still honours. Loopback only; in-memory state; nothing here is fit
 * for production.
 *
 *   node scripts/demo-authorization-server.mjs [--port 8091] [--client-id demo-client]
 *     [--client-secret demo-secret] --redirect-uri http://127.0.0.1:8080/v1/integration/connections/oauth2/callback
 *
 * Consent is given automatically (`--auto-approve`, the default from the command line: a terminal
 * has no browser); tests pass `autoApprove: false` to go through the server's own sign-in and
 * consent pages over HTTP. Prints `demo authorization server listening on <issuer>` first.
 */
import { realpathSync } from "node:fs";
import { createServer } from "node:http";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import Provider from "oidc-provider";

/**
 * @param {{
 *   port?: number,
 *   clients: { clientId: string, clientSecret: string, redirectUris: string[] }[],
 *   autoApprove?: boolean,
 *   accessTokenTtlSeconds?: number,
 *   accountId?: string,
 *   quiet?: boolean,
 * }} options
 */
export async function startAuthorizationServer(options) {
  if (options.quiet) silenceDevelopmentWarnings();
  const server = createServer();
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve(undefined));
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;
  const issuer = `http://127.0.0.1:${port}`;
  const accountId = options.accountId ?? "demo-user";
  const counts = { tokenRequests: 0, grants: /** @type {Record<string, number>} */ ({}) };
  const refreshTokens = /** @type {string[]} */ ([]);

  const provider = new Provider(issuer, {
    clients: options.clients.map((client) => ({
      client_id: client.clientId,
      client_secret: client.clientSecret,
      redirect_uris: client.redirectUris,
      grant_types: ["authorization_code", "refresh_token", "client_credentials"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    })),
    scopes: ["openid", "offline_access", "api:read"],
    features: {
      devInteractions: { enabled: !(options.autoApprove ?? false) },
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
    },
    pkce: { required: () => true },
    // Every authorization-code client gets refresh tokens, rotated on each use (RFC 9700 §4.14.2).
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token"),
    rotateRefreshToken: () => true,
    ttl: {
      AccessToken: options.accessTokenTtlSeconds ?? 3600,
      ClientCredentials: options.accessTokenTtlSeconds ?? 3600,
      RefreshToken: 14 * 24 * 3600,
      AuthorizationCode: 60,
      Grant: 14 * 24 * 3600,
      Interaction: 600,
      Session: 3600,
    },
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    cookies: { keys: ["demo-authorization-server-cookie-key"] },
  });
  provider.on("grant.success", (ctx) => {
    const grantType = String(ctx.oidc.params?.grant_type ?? "unknown");
    counts.grants[grantType] = (counts.grants[grantType] ?? 0) + 1;
  });
  provider.on("refresh_token.saved", (token) => refreshTokens.push(token.jti));
  const callback = provider.callback();

  server.on("request", (req, res) => {
    const path = new URL(req.url ?? "/", issuer).pathname;
    if (req.method === "POST" && path === "/token") counts.tokenRequests++;
    if (path === "/api/hello") return serveProtectedResource(provider, req, res);
    if (options.autoApprove && path.startsWith("/interaction/")) {
      return approve(provider, accountId, req, res).catch((error) => {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end(`interaction failed: ${error instanceof Error ? error.message : error}`);
      });
    }
    return callback(req, res);
  });

  return {
    issuer,
    authorizationUrl: `${issuer}/auth`,
    tokenUrl: `${issuer}/token`,
    revocationUrl: `${issuer}/token/revocation`,
    /** POST /token requests received, whatever their outcome. */
    tokenRequests: () => counts.tokenRequests,
    /** Successful grants by `grant_type`. */
    grants: () => ({ ...counts.grants }),
    /** Every refresh token issued so far, oldest first. */
    refreshTokens: () => [...refreshTokens],
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve(undefined));
        server.closeAllConnections();
      }),
  };
}

/**
 * oidc-provider warns on stderr that its in-memory adapter and generated keys are for
 * development only; this server is exactly that, and says so in its own first line.
 */
function silenceDevelopmentWarnings() {
  const warn = console.warn;
  console.warn = (...args) => {
    if (typeof args[0] === "string" && args[0].includes("oidc-provider WARNING")) return;
    warn(...args);
  };
}

/** Signs `accountId` in and grants whatever the client asked for: the consent a person would give. */
async function approve(provider, accountId, req, res) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === "login") {
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId } },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: String(details.params.client_id) });
  const missing = details.prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(" "));
  }
  await provider.interactionFinished(
    req,
    res,
    { consent: { grantId: await grant.save() } },
    { mergeWithLastSubmission: true },
  );
}

/** `GET /api/hello`: 200 for a live access token of this server, 401 otherwise. */
async function serveProtectedResource(provider, req, res) {
  const header = req.headers.authorization ?? "";
  const value = header.startsWith("Bearer ") ? header.slice(7) : "";
  const token =
    value === ""
      ? undefined
      : ((await provider.AccessToken.find(value)) ??
        (await provider.ClientCredentials.find(value)));
  const body = JSON.stringify(
    token
      ? { message: "hello from the demo resource", subject: token.accountId ?? token.clientId }
      : { error: "invalid_token" },
  );
  res.writeHead(token ? 200 : 401, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    ...(token ? {} : { "www-authenticate": 'Bearer error="invalid_token"' }),
  });
  res.end(body);
}

// Run as a program (not imported by a test)? Node gives the main module its real path, so the
// path it was started by is resolved through symlinks too before comparing.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: "8091" },
      "client-id": { type: "string", default: "demo-client" },
      "client-secret": { type: "string", default: "demo-secret" },
      "redirect-uri": { type: "string" },
    },
  });
  const port = Number(values.port);
  if (!values["redirect-uri"] || !Number.isInteger(port)) {
    console.error(
      "usage: node scripts/demo-authorization-server.mjs --redirect-uri <callback URL> [--port N] [--client-id ID] [--client-secret SECRET]",
    );
    process.exit(2);
  }
  const started = await startAuthorizationServer({
    port,
    autoApprove: true,
    quiet: true,
    clients: [
      {
        clientId: values["client-id"],
        clientSecret: values["client-secret"],
        redirectUris: [values["redirect-uri"]],
      },
    ],
  }).catch((error) => {
    console.error(
      `demo authorization server: ${error?.code === "EADDRINUSE" ? `port ${port} is in use` : error}`,
    );
    process.exit(1);
  });
  console.log(
    `demo authorization server listening on ${started.issuer} (development only: in-memory state, generated keys, consent given automatically)`,
  );
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, () => started.close().then(() => process.exit(0)));
  }
}
