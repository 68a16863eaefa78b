import { CliError, createApiClient, usageError } from "../api-client";
import { type Command, stringOption } from "../context";
import { EXIT } from "../exit-codes";
import { removeStoredLogin, storeLogin } from "../login-store";
import { readSecrets } from "../secret-input";

export const loginCommands: Command[] = [
  {
    name: "login",
    summary: "check a token against the API and keep it for later commands (file mode 0600)",
    options: { url: { type: "string" } },
    help: `The token comes from a hidden prompt, or from standard input (keyway login --url URL < token-file);
never from the command line. --url defaults to KEYWAY_URL. Stored in $XDG_CONFIG_HOME/keyway/credentials.json,
else ~/.config/keyway/credentials.json. KEYWAY_URL and KEYWAY_TOKEN, when set, win over the stored login.`,
    async run(context) {
      const env = context.deps.env ?? {};
      const url = stringOption(context.options, "url") ?? env.KEYWAY_URL;
      if (url === undefined || url === "")
        throw usageError("--url is required (or set KEYWAY_URL)");
      try {
        new URL(url);
      } catch {
        throw usageError(`not a URL: ${url}`);
      }
      const token = ((await readSecrets(context.deps.stdin, ["token"])).token ?? "").trim();
      const api = createApiClient({
        url,
        token,
        ...(context.deps.fetch ? { fetch: context.deps.fetch } : {}),
      });
      // An organization token can read its organization; an operator token is refused there
      // (403) but can list organizations. Anything else (401, unreachable) stores nothing.
      let identity:
        | { kind: "organization"; organization: { id: string; name: string } }
        | { kind: "operator" };
      try {
        identity = {
          kind: "organization",
          organization: await api.request("GET", "/v1/organization"),
        };
      } catch (error) {
        if (!(error instanceof CliError && error.code === "forbidden")) throw error;
        await api.request("GET", "/v1/operator/organizations");
        identity = { kind: "operator" };
      }
      const path = await storeLogin(env, { url: api.url, token });
      context.out.result({ url: api.url, ...identity, path }, () =>
        context.out.line(
          `logged in to ${api.url} as ${
            identity.kind === "operator"
              ? "the operator"
              : `organization ${identity.organization.name} (${identity.organization.id})`
          }; token kept in ${path}`,
        ),
      );
      return EXIT.ok;
    },
  },
  {
    name: "logout",
    summary: "remove the stored login (the token itself stays valid; revoke it with tokens revoke)",
    async run(context) {
      const result = await removeStoredLogin(context.deps.env ?? {});
      context.out.result(result, () =>
        context.out.line(result.removed ? `removed ${result.path}` : "not logged in"),
      );
      return undefined;
    },
  },
];
