import { CliError } from "../api-client";
import { argAt, type Command, stringOption } from "../context";
import { EXIT } from "../exit-codes";
import { shortTime } from "../output";

interface Organization {
  id: string;
  name: string;
  createdAt: string;
}

interface CreatedToken {
  id: string;
  name: string;
  role: string;
  token: string;
}

export const organizationCommands: Command[] = [
  {
    name: "organizations list",
    summary: "list organizations (operator)",
    async run(context) {
      const page = await (await context.api()).request<{ items: Organization[] }>(
        "GET",
        "/v1/operator/organizations",
      );
      context.out.result(page, () =>
        context.out.table(
          ["id", "name", "created"],
          page.items.map((o) => [o.id, o.name, shortTime(o.createdAt)]),
        ),
      );
      return undefined;
    },
  },
  {
    name: "organizations create",
    summary: "create an organization and its first admin token, shown once (operator)",
    args: ["name"],
    options: { "admin-token-name": { type: "string" } },
    async run(context) {
      const adminTokenName = stringOption(context.options, "admin-token-name");
      const created = await (await context.api()).request<{
        organization: Organization;
        adminToken: CreatedToken;
      }>("POST", "/v1/operator/organizations", {
        body: { name: argAt(context, 0), ...(adminTokenName ? { adminTokenName } : {}) },
      });
      context.out.result(created, () => {
        context.out.fields([
          ["organization", created.organization.id],
          ["name", created.organization.name],
          ["admin token", created.adminToken.token],
        ]);
        context.out.line(
          "\nThe admin token is shown only now; keep it (e.g. KEYWAY_TOKEN or keyway login).",
        );
      });
      return undefined;
    },
  },
  {
    name: "organizations show",
    summary: "show the token's own organization, or (operator) the organization with this id",
    args: ["id?"],
    async run(context) {
      const api = await context.api();
      const id = context.args[0];
      let organization: Organization;
      if (id === undefined)
        organization = await api.request<Organization>("GET", "/v1/organization");
      else {
        // The operator API has no single-organization route; the list is small.
        const page = await api.request<{ items: Organization[] }>(
          "GET",
          "/v1/operator/organizations",
        );
        const found = page.items.find((o) => o.id === id);
        if (!found) throw new CliError("not_found", `no organization ${id}`, EXIT.api);
        organization = found;
      }
      context.out.result(organization, () =>
        context.out.fields([
          ["id", organization.id],
          ["name", organization.name],
          ["created", shortTime(organization.createdAt)],
        ]),
      );
      return undefined;
    },
  },
];

export const tokenCommands: Command[] = [
  {
    name: "tokens list",
    summary: "list the organization's API tokens (admin)",
    async run(context) {
      const page = await (await context.api()).request<{
        items: {
          id: string;
          name: string;
          role: string;
          createdAt: string;
          lastUsedAt: string | null;
          revokedAt: string | null;
        }[];
      }>("GET", "/v1/api-tokens");
      context.out.result(page, () =>
        context.out.table(
          ["id", "name", "role", "created", "last used", "revoked"],
          page.items.map((t) => [
            t.id,
            t.name,
            t.role,
            shortTime(t.createdAt),
            shortTime(t.lastUsedAt),
            shortTime(t.revokedAt),
          ]),
        ),
      );
      return undefined;
    },
  },
  {
    name: "tokens create",
    summary: "create an API token (admin); the token is shown once",
    args: ["name"],
    options: { role: { type: "string" } },
    help: "--role admin|member|viewer (default member)",
    async run(context) {
      const created = await (await context.api()).request<CreatedToken>("POST", "/v1/api-tokens", {
        body: { name: argAt(context, 0), role: stringOption(context.options, "role") ?? "member" },
      });
      context.out.result(created, () => {
        context.out.fields([
          ["id", created.id],
          ["name", created.name],
          ["role", created.role],
          ["token", created.token],
        ]);
        context.out.line("\nThe token is shown only now.");
      });
      return undefined;
    },
  },
  {
    name: "tokens revoke",
    summary: "revoke an API token (admin)",
    args: ["id"],
    async run(context) {
      const id = argAt(context, 0);
      await (await context.api()).request("DELETE", `/v1/api-tokens/${encodeURIComponent(id)}`);
      context.out.result({ id, revoked: true }, () => context.out.line(`revoked ${id}`));
      return undefined;
    },
  },
];
