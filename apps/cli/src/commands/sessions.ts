import {
  argAt,
  type Command,
  type CommandContext,
  positiveInteger,
  requiredOption,
  stringOption,
} from "../context";
import { shortTime } from "../output";
import { resolveProfileId } from "../profile-ref";

interface Session {
  id: string;
  profileId: string;
  profileVersion: number;
  planDigest: string;
  status: string;
  tokenExpiresAt: string;
  expiresAt: string;
  revokedAt: string | null;
  createdBy: string;
  createdAt: string;
}

interface StartedSession {
  id: string;
  token: string;
  expiresAt: string;
  proxyUrl: string;
  profileId: string;
  profileVersion: number;
  planDigest: string;
  files: unknown[];
  env: unknown[];
}

const path = (id: string) => `/v1/sandbox-sessions/${encodeURIComponent(id)}`;

function showSession(context: CommandContext, session: Session) {
  context.out.result(session, () =>
    context.out.fields([
      ["id", session.id],
      ["profile", `${session.profileId} v${session.profileVersion}`],
      ["status", session.status],
      ["plan digest", session.planDigest],
      ["expires", shortTime(session.expiresAt)],
      ["revoked", shortTime(session.revokedAt) ?? undefined],
      ["created", `${shortTime(session.createdAt)} by ${session.createdBy}`],
    ]),
  );
}

export const sessionCommands: Command[] = [
  {
    name: "sessions create",
    summary: "start a sandbox session of a profile; --json prints everything a sandbox needs",
    options: { profile: { type: "string" }, version: { type: "string" } },
    help: `--profile ID|NAME [--version N (default: the latest)]. The human output shows the session and
its proxy URL (which holds the session token); --json prints the whole response: token, proxy
environment, CA certificate, files and environment of the plan.`,
    async run(context) {
      const api = await context.api();
      const profileId = await resolveProfileId(api, requiredOption(context.options, "profile"));
      const version = positiveInteger(stringOption(context.options, "version"), "--version");
      const started = await api.request<StartedSession>("POST", "/v1/sandbox-sessions", {
        body: { profileId, ...(version !== undefined ? { version } : {}) },
      });
      context.out.result(started, () =>
        context.out.fields([
          ["id", started.id],
          ["profile", `${started.profileId} v${started.profileVersion}`],
          ["expires", shortTime(started.expiresAt)],
          ["proxy", started.proxyUrl],
          ["files", started.files.length],
          ["env", started.env.length],
        ]),
      );
      return undefined;
    },
  },
  {
    name: "sessions list",
    summary: "list sandbox sessions, newest first",
    options: { profile: { type: "string" }, limit: { type: "string" }, before: { type: "string" } },
    async run(context) {
      const api = await context.api();
      const profile = stringOption(context.options, "profile");
      const page = await api.request<{ items: Session[]; nextCursor: string | null }>(
        "GET",
        "/v1/sandbox-sessions",
        {
          query: {
            profileId: profile === undefined ? undefined : await resolveProfileId(api, profile),
            limit: positiveInteger(stringOption(context.options, "limit"), "--limit"),
            before: stringOption(context.options, "before"),
          },
        },
      );
      context.out.result(page, () => {
        context.out.table(
          ["id", "profile", "version", "status", "created", "expires"],
          page.items.map((s) => [
            s.id,
            s.profileId,
            s.profileVersion,
            s.status,
            shortTime(s.createdAt),
            shortTime(s.expiresAt),
          ]),
          [2],
        );
        if (page.nextCursor !== null)
          context.out.line(`\nmore: keyway sessions list --before ${page.nextCursor}`);
      });
      return undefined;
    },
  },
  {
    name: "sessions show",
    summary: "show one sandbox session",
    args: ["id"],
    async run(context) {
      showSession(
        context,
        await (await context.api()).request<Session>("GET", path(argAt(context, 0))),
      );
      return undefined;
    },
  },
  {
    name: "sessions revoke",
    summary: "revoke a sandbox session: gateways refuse its token from now on",
    args: ["id"],
    async run(context) {
      const id = argAt(context, 0);
      await (await context.api()).request("DELETE", path(id));
      context.out.result({ id, revoked: true }, () => context.out.line(`revoked ${id}`));
      return undefined;
    },
  },
];
