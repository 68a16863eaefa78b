import { randomBytes } from "node:crypto";
import { importSPKI, jwtVerify } from "jose";
import { HttpResponse, http, type RequestHandler } from "msw";

/**
 * Stands in for the GitHub side of a GitHub App in tests (msw handlers; GitHub cannot be reached
 * from here): installing the app, the user authorization that comes with the setup redirect, and
 * the app's own endpoints. Shaped from GitHub's documentation:
 *
 * - "About the setup URL", "Registering a GitHub App": after an install the browser goes back
 *   with `installation_id`, `setup_action` (`install`, `update`; `request` with no id when a
 *   member only asked an owner to install) and the `state` the install URL carried. With
 *   "Request user authorization (OAuth) during installation" it goes to the app's User
 *   authorization callback URL (the Setup URL field is then unavailable) and also carries a
 *   `code`; without, to the Setup URL, with no code;
 * - "Generating a user access token for a GitHub App": `POST {web}/login/oauth/access_token`
 *   takes `client_id`, `client_secret` and `code` (single use, 10 minutes) and answers 200 even
 *   when it refuses (`{ error: "bad_verification_code" }`, `incorrect_client_credentials`);
 * - "List app installations accessible to the user access token": `GET {api}/user/installations`
 *   with the user token, `per_page` (default 30, max 100) and `page`, answering
 *   `{ total_count, installations }`;
 * - "Create an installation access token for an app": `POST
 *   {api}/app/installations/{id}/access_tokens` with the app JWT (RS256, `iss`, at most 10
 *   minutes), optionally narrowed by `repositories` (names) and `permissions`; 201 with `token`
 *   and `expires_at` (one hour), 404 for an unknown installation, 403 for a suspended one, 422
 *   for a repository or permission the installation lacks;
 * - "Get an installation for the authenticated app": `GET {api}/app/installations/{id}`;
 * - "List repositories accessible to the app installation": `GET {api}/installation/repositories`
 *   with an installation token;
 * - "installation" webhook events: `action` `created`, `deleted`, `suspend`, `unsuspend`, with
 *   the `installation` (`id`, `account`, `suspended_at`) and the `sender`.
 */

export interface GitHubAppStandInOptions {
  /** `https://github.com`, or a GHES host. */
  webBaseUrl: string;
  /** `https://api.github.com`, or `https://HOST/api/v3`. */
  apiBaseUrl: string;
  appSlug: string;
  /** `/apps/<slug>` on GitHub.com, `/github-apps/<slug>` on GitHub Enterprise Server. */
  edition: "cloud" | "enterprise-server";
  clientId: string;
  clientSecret: string;
  /** The app's public key (SPKI PEM) and accepted `iss`: other JWTs get 401. */
  publicKeyPem: string;
  issuer: string;
  /** The app's User authorization callback URL: installs go back here when it requests authorization. */
  callbackUrl: string;
  /** The app's Setup URL: installs go back here when it does not. */
  setupUrl?: string;
  /** "Request user authorization (OAuth) during installation" (default true). */
  requestUserAuthorization?: boolean;
  now: () => Date;
}

export interface StandInInstallation {
  id: number;
  account: string;
  repositories: string[];
  permissions: Record<string, "read" | "write">;
  /** Logins of the users who can access it (`/user/installations`). */
  users: string[];
  suspendedAt: string | null;
}

export interface TokenRequest {
  installationId: string;
  body: unknown;
  status: number;
}

export interface GitHubAppStandIn {
  handlers: RequestHandler[];
  /**
   * A user opens the install URL Keyway handed out and installs the app on `account` (or
   * configures the existing installation `installationId`). Returns where GitHub then sends the
   * browser: the callback URL with `installation_id`, `setup_action`, `state` and a fresh `code`
   * for that user (the Setup URL, without a code, when the app requests no authorization).
   */
  install(
    installUrl: string,
    input: { user: string; account?: string; installationId?: number; repositories?: string[] },
  ): string;
  addInstallation(input: Partial<StandInInstallation> & { account: string }): StandInInstallation;
  installation(id: number): StandInInstallation | undefined;
  /** A fresh authorization code for a user (as a setup redirect would carry). */
  issueCode(user: string): string;
  suspend(id: number): void;
  unsuspend(id: number): void;
  /** The installation is deleted: its tokens stop working. */
  remove(id: number): void;
  /** An `installation` webhook payload, as GitHub sends it. */
  installationEvent(action: string, id: number): Record<string, unknown>;
  /** Every installation token request, answered or refused. */
  readonly tokenRequests: readonly TokenRequest[];
  /** While true, every request answers 503 (a GitHub outage). */
  unavailable: boolean;
}

const CODE_LIFETIME_MS = 10 * 60_000;
const TOKEN_LIFETIME_MS = 60 * 60_000;

const random = (prefix: string) => `${prefix}_${randomBytes(18).toString("base64url")}`;
/** GitHub's timestamps: ISO 8601 without milliseconds. */
const githubTime = (date: Date) => date.toISOString().replace(/\.\d{3}Z$/, "Z");

export function createGitHubAppStandIn(options: GitHubAppStandInOptions): GitHubAppStandIn {
  const web = options.webBaseUrl.replace(/\/+$/, "");
  const api = options.apiBaseUrl.replace(/\/+$/, "");
  const installations = new Map<number, StandInInstallation>();
  const codes = new Map<string, { user: string; expiresAt: number }>();
  const userTokens = new Map<string, string>();
  const installationTokens = new Map<
    string,
    { installationId: number; expiresAt: number; repositories: string[] }
  >();
  const tokenRequests: TokenRequest[] = [];
  let nextInstallationId = 52_000_001;

  const installPath = `/${options.edition === "cloud" ? "apps" : "github-apps"}/${options.appSlug}/installations/new`;

  function addInstallation(
    input: Partial<StandInInstallation> & { account: string },
  ): StandInInstallation {
    const installation: StandInInstallation = {
      id: input.id ?? nextInstallationId++,
      account: input.account,
      repositories: input.repositories ?? ["widgets"],
      permissions: input.permissions ?? {
        contents: "write",
        metadata: "read",
        pull_requests: "write",
      },
      users: input.users ?? [],
      suspendedAt: input.suspendedAt ?? null,
    };
    installations.set(installation.id, installation);
    return installation;
  }

  function issueCode(user: string): string {
    const code = randomBytes(10).toString("hex");
    codes.set(code, { user, expiresAt: options.now().getTime() + CODE_LIFETIME_MS });
    return code;
  }

  function unavailable(): Response | undefined {
    return standIn.unavailable
      ? HttpResponse.json({ message: "Service Unavailable" }, { status: 503 })
      : undefined;
  }

  async function appJwtRefusal(request: Request): Promise<Response | undefined> {
    const jwt = /^Bearer (.+)$/.exec(request.headers.get("authorization") ?? "")?.[1];
    try {
      if (jwt === undefined) throw new Error("no token");
      const key = await importSPKI(options.publicKeyPem, "RS256");
      const { payload } = await jwtVerify(jwt, key, {
        algorithms: ["RS256"],
        issuer: options.issuer,
        currentDate: options.now(),
      });
      if ((payload.exp ?? 0) - (payload.iat ?? 0) > 11 * 60) throw new Error("too long");
      return undefined;
    } catch {
      return HttpResponse.json(
        { message: "A JSON web token could not be decoded" },
        { status: 401 },
      );
    }
  }

  function bearer(request: Request): string | undefined {
    return /^(?:Bearer|token) (.+)$/.exec(request.headers.get("authorization") ?? "")?.[1];
  }

  function page<T>(request: Request, items: readonly T[]): T[] {
    const params = new URL(request.url).searchParams;
    const perPage = Math.min(Number(params.get("per_page") ?? "30") || 30, 100);
    const number = Math.max(Number(params.get("page") ?? "1") || 1, 1);
    return items.slice((number - 1) * perPage, number * perPage);
  }

  function installationBody(installation: StandInInstallation) {
    return {
      id: installation.id,
      account: { login: installation.account, id: 1000 + installation.id, type: "Organization" },
      app_slug: options.appSlug,
      target_type: "Organization",
      permissions: installation.permissions,
      repository_selection: "selected",
      events: ["push", "pull_request"],
      suspended_at: installation.suspendedAt,
    };
  }

  const handlers = [
    http.post(`${web}/login/oauth/access_token`, async ({ request }) => {
      const down = unavailable();
      if (down) return down;
      const form = new URLSearchParams(await request.text());
      if (
        form.get("client_id") !== options.clientId ||
        form.get("client_secret") !== options.clientSecret
      ) {
        return HttpResponse.json({
          error: "incorrect_client_credentials",
          error_description: "The client_id and/or client_secret passed are incorrect.",
        });
      }
      const code = form.get("code") ?? "";
      const issued = codes.get(code);
      codes.delete(code);
      if (issued === undefined || issued.expiresAt <= options.now().getTime()) {
        return HttpResponse.json({
          error: "bad_verification_code",
          error_description: "The code passed is incorrect or expired.",
        });
      }
      const token = random("ghu");
      userTokens.set(token, issued.user);
      return HttpResponse.json({
        access_token: token,
        expires_in: 28_800,
        refresh_token: random("ghr"),
        refresh_token_expires_in: 15_897_600,
        token_type: "bearer",
        scope: "",
      });
    }),

    http.get(`${api}/user/installations`, ({ request }) => {
      const down = unavailable();
      if (down) return down;
      const user = userTokens.get(bearer(request) ?? "");
      if (user === undefined) {
        return HttpResponse.json({ message: "Bad credentials" }, { status: 401 });
      }
      const visible = [...installations.values()].filter((i) => i.users.includes(user));
      return HttpResponse.json({
        total_count: visible.length,
        installations: page(request, visible).map(installationBody),
      });
    }),

    http.post(`${api}/app/installations/:id/access_tokens`, async ({ request, params }) => {
      const down = unavailable();
      if (down) return down;
      const installationId = String(params.id);
      const text = await request.text();
      const body: unknown = text === "" ? undefined : JSON.parse(text);
      const answer = (status: number, json: Record<string, unknown>) => {
        tokenRequests.push({ installationId, body, status });
        return HttpResponse.json(json, { status });
      };
      const refused = await appJwtRefusal(request);
      if (refused) {
        tokenRequests.push({ installationId, body, status: 401 });
        return refused;
      }
      const installation = installations.get(Number(installationId));
      if (installation === undefined) return answer(404, { message: "Not Found" });
      if (installation.suspendedAt !== null) {
        return answer(403, { message: "This installation has been suspended" });
      }
      const narrowing = (body ?? {}) as {
        repositories?: string[];
        permissions?: Record<string, string>;
      };
      const repositories = narrowing.repositories ?? installation.repositories;
      if (repositories.some((name) => !installation.repositories.includes(name))) {
        return answer(422, {
          message:
            "There is at least one repository that does not exist or is not accessible to the parent installation.",
        });
      }
      const permissions = narrowing.permissions ?? installation.permissions;
      for (const [name, level] of Object.entries(permissions)) {
        const granted = installation.permissions[name];
        if (granted === undefined || (level === "write" && granted !== "write")) {
          return answer(422, {
            message: `The permissions requested are not granted to this installation.`,
          });
        }
      }
      const token = random("ghs");
      const expiresAt = options.now().getTime() + TOKEN_LIFETIME_MS;
      installationTokens.set(token, { installationId: installation.id, expiresAt, repositories });
      return answer(201, {
        token,
        expires_at: githubTime(new Date(expiresAt)),
        permissions,
        repository_selection: "selected",
      });
    }),

    http.get(`${api}/app/installations/:id`, async ({ request, params }) => {
      const down = unavailable();
      if (down) return down;
      const refused = await appJwtRefusal(request);
      if (refused) return refused;
      const installation = installations.get(Number(params.id));
      return installation === undefined
        ? HttpResponse.json({ message: "Not Found" }, { status: 404 })
        : HttpResponse.json(installationBody(installation));
    }),

    http.get(`${api}/installation/repositories`, ({ request }) => {
      const down = unavailable();
      if (down) return down;
      const token = installationTokens.get(bearer(request) ?? "");
      const installation =
        token === undefined ? undefined : installations.get(token.installationId);
      if (
        token === undefined ||
        installation === undefined ||
        token.expiresAt <= options.now().getTime()
      ) {
        return HttpResponse.json({ message: "Bad credentials" }, { status: 401 });
      }
      const repositories = token.repositories.map((name) => ({
        name,
        full_name: `${installation.account}/${name}`,
      }));
      return HttpResponse.json({
        total_count: repositories.length,
        repositories: page(request, repositories),
      });
    }),
  ];

  const standIn: GitHubAppStandIn = {
    handlers,
    install(installUrl, input) {
      const url = new URL(installUrl);
      if (`${url.origin}${url.pathname}` !== `${web}${installPath}`) {
        throw new Error(`not this app's install page: ${url.origin}${url.pathname}`);
      }
      let installation =
        input.installationId === undefined ? undefined : installations.get(input.installationId);
      if (installation === undefined) {
        installation = addInstallation({
          account: input.account ?? input.user,
          users: [input.user],
          ...(input.repositories ? { repositories: input.repositories } : {}),
        });
      } else if (!installation.users.includes(input.user)) {
        installation.users.push(input.user);
      }
      const authorize = options.requestUserAuthorization !== false;
      const back = authorize ? options.callbackUrl : options.setupUrl;
      if (back === undefined) throw new Error("the app has no Setup URL to send the browser to");
      const setup = new URL(back);
      if (authorize) setup.searchParams.set("code", issueCode(input.user));
      setup.searchParams.set("installation_id", String(installation.id));
      setup.searchParams.set(
        "setup_action",
        input.installationId === undefined ? "install" : "update",
      );
      const state = url.searchParams.get("state");
      if (state !== null) setup.searchParams.set("state", state);
      return setup.toString();
    },
    addInstallation,
    installation: (id) => installations.get(id),
    issueCode,
    suspend(id) {
      const installation = installations.get(id);
      if (installation) installation.suspendedAt = githubTime(options.now());
    },
    unsuspend(id) {
      const installation = installations.get(id);
      if (installation) installation.suspendedAt = null;
    },
    remove(id) {
      installations.delete(id);
      for (const [token, held] of installationTokens) {
        if (held.installationId === id) installationTokens.delete(token);
      }
    },
    installationEvent(action, id) {
      const installation = installations.get(id) ?? {
        id,
        account: "deleted-account",
        repositories: [],
        permissions: {},
        users: [],
        suspendedAt: null,
      };
      return {
        action,
        installation: installationBody(installation),
        sender: { login: installation.users[0] ?? "octocat", id: 583231, type: "User" },
      };
    },
    get tokenRequests() {
      return tokenRequests;
    },
    unavailable: false,
  };
  return standIn;
}
