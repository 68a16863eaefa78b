import { usageError } from "../api-client";
import {
  argAt,
  type Command,
  type CommandContext,
  positiveInteger,
  requiredOption,
  stringOption,
} from "../context";
import { shortTime } from "../output";

interface WebhookEvent {
  id: string;
  organizationId?: string | null;
  targetKey: string;
  connectionId: string | null;
  eventType: string;
  status: string;
  attempts: number;
  lastError: string | null;
  receivedAt: string;
}

interface Delivery {
  id: string;
  subscriptionId: string;
  status: string;
  attempts: number;
  responseStatus: number | null;
  lastError: string | null;
}

interface EventDetail extends WebhookEvent {
  payload: unknown;
  deliveries: Delivery[];
}

interface Subscription {
  id: string;
  url: string;
  description: string | null;
  eventTypes: string[];
  enabled: boolean;
  disabledReason: string | null;
  previousSecretExpiresAt: string | null;
  createdAt: string;
}

/** Operators read every organization's events on their own routes (`--all-organizations`). */
function eventsPath(context: CommandContext, id?: string): string {
  const base =
    context.options["all-organizations"] === true
      ? "/v1/operator/webhook-events"
      : "/v1/webhook-events";
  return id === undefined ? base : `${base}/${encodeURIComponent(id)}`;
}

const ALL_ORGANIZATIONS = { "all-organizations": { type: "boolean" } } as const;

function showDeliveries(context: CommandContext, deliveries: readonly Delivery[]) {
  context.out.table(
    ["delivery", "subscription", "status", "attempts", "response", "last error"],
    deliveries.map((d) => [
      d.id,
      d.subscriptionId,
      d.status,
      d.attempts,
      d.responseStatus,
      d.lastError,
    ]),
    [3],
  );
}

function showSubscription(
  context: CommandContext,
  subscription: Subscription & { secret?: string },
) {
  context.out.result(subscription, () => {
    context.out.fields([
      ["id", subscription.id],
      ["url", subscription.url],
      ["description", subscription.description ?? undefined],
      ["events", subscription.eventTypes.join(", ")],
      ["enabled", subscription.enabled],
      ["disabled because", subscription.disabledReason ?? undefined],
      ["old secret valid until", shortTime(subscription.previousSecretExpiresAt) ?? undefined],
      ["secret", subscription.secret],
    ]);
    if (subscription.secret !== undefined)
      context.out.line(
        "\nThe signing secret is shown only now; verify deliveries with it (Standard Webhooks).",
      );
  });
}

const subscriptionPath = (id: string) => `/v1/webhook-subscriptions/${encodeURIComponent(id)}`;

export const webhookCommands: Command[] = [
  {
    name: "events list",
    summary: "list received webhook events, newest first, with filters",
    options: {
      target: { type: "string" },
      type: { type: "string" },
      status: { type: "string" },
      after: { type: "string" },
      before: { type: "string" },
      limit: { type: "string" },
      cursor: { type: "string" },
      organization: { type: "string" },
      ...ALL_ORGANIZATIONS,
    },
    help: `--target KEY, --type TYPE (github.pull_request.* matches a family), --status received|processed|ignored|failed|unassigned,
--after / --before ISO-TIME (received), --limit N, --cursor C (the nextCursor of the previous page).
Operators: --all-organizations [--organization ID].`,
    async run(context) {
      const options = context.options;
      const organization = stringOption(options, "organization");
      if (organization !== undefined && options["all-organizations"] !== true)
        throw usageError("--organization needs --all-organizations (operator)");
      const page = await (await context.api()).request<{
        items: WebhookEvent[];
        nextCursor: string | null;
      }>("GET", eventsPath(context), {
        query: {
          targetKey: stringOption(options, "target"),
          type: stringOption(options, "type"),
          status: stringOption(options, "status"),
          receivedAfter: stringOption(options, "after"),
          receivedBefore: stringOption(options, "before"),
          limit: positiveInteger(stringOption(options, "limit"), "--limit"),
          before: stringOption(options, "cursor"),
          organizationId: organization,
        },
      });
      context.out.result(page, () => {
        context.out.table(
          ["id", "received", "target", "type", "status", "attempts"],
          page.items.map((e) => [
            e.id,
            shortTime(e.receivedAt),
            e.targetKey,
            e.eventType,
            e.status,
            e.attempts,
          ]),
          [5],
        );
        if (page.nextCursor !== null)
          context.out.line(`\nmore: keyway events list --cursor ${page.nextCursor}`);
      });
      return undefined;
    },
  },
  {
    name: "events show",
    summary: "show one webhook event with its payload and deliveries",
    args: ["id"],
    options: ALL_ORGANIZATIONS,
    async run(context) {
      const event = await (await context.api()).request<EventDetail>(
        "GET",
        eventsPath(context, argAt(context, 0)),
      );
      context.out.result(event, () => {
        context.out.fields([
          ["id", event.id],
          ["organization", event.organizationId === undefined ? undefined : event.organizationId],
          ["target", event.targetKey],
          ["connection", event.connectionId],
          ["type", event.eventType],
          ["status", event.status],
          ["last error", event.lastError ?? undefined],
          ["received", shortTime(event.receivedAt)],
          ["payload", JSON.stringify(event.payload)],
        ]);
        context.out.line();
        showDeliveries(context, event.deliveries);
      });
      return undefined;
    },
  },
  {
    name: "events replay",
    summary: "deliver a webhook event again to every matching subscription",
    args: ["id"],
    async run(context) {
      const id = argAt(context, 0);
      const replay = await (await context.api()).request<{
        eventId: string;
        deliveries: Delivery[];
        inFlight: string[];
      }>("POST", `/v1/webhook-events/${encodeURIComponent(id)}/replay`);
      context.out.result(replay, () => {
        showDeliveries(context, replay.deliveries);
        if (replay.inFlight.length > 0)
          context.out.line(`\nstill in flight (not replayed): ${replay.inFlight.join(", ")}`);
      });
      return undefined;
    },
  },
  {
    name: "subscriptions create",
    summary: "subscribe a URL to webhook events; the signing secret is shown once",
    options: {
      url: { type: "string" },
      event: { type: "string", multiple: true },
      description: { type: "string" },
      disabled: { type: "boolean" },
    },
    help: "--url URL --event TYPE (repeatable; github.pull_request.* or * match families) [--description TEXT] [--disabled]",
    async run(context) {
      const eventTypes = (context.options.event as string[] | undefined) ?? [];
      if (eventTypes.length === 0) throw usageError("--event is required (repeatable)");
      const description = stringOption(context.options, "description");
      showSubscription(
        context,
        await (await context.api()).request("POST", "/v1/webhook-subscriptions", {
          body: {
            url: requiredOption(context.options, "url"),
            eventTypes,
            ...(description !== undefined ? { description } : {}),
            ...(context.options.disabled === true ? { enabled: false } : {}),
          },
        }),
      );
      return undefined;
    },
  },
  {
    name: "subscriptions list",
    summary: "list webhook subscriptions",
    async run(context) {
      const page = await (await context.api()).request<{ items: Subscription[] }>(
        "GET",
        "/v1/webhook-subscriptions",
      );
      context.out.result(page, () =>
        context.out.table(
          ["id", "url", "events", "enabled"],
          page.items.map((s) => [s.id, s.url, s.eventTypes.join(","), s.enabled]),
        ),
      );
      return undefined;
    },
  },
  {
    name: "subscriptions show",
    summary: "show one webhook subscription (never its secret)",
    args: ["id"],
    async run(context) {
      showSubscription(
        context,
        await (await context.api()).request("GET", subscriptionPath(argAt(context, 0))),
      );
      return undefined;
    },
  },
  {
    name: "subscriptions rotate",
    summary: "issue a new signing secret (shown once); the old one keeps verifying for a while",
    args: ["id"],
    async run(context) {
      showSubscription(
        context,
        await (await context.api()).request(
          "POST",
          `${subscriptionPath(argAt(context, 0))}/rotate-secret`,
        ),
      );
      return undefined;
    },
  },
  {
    name: "subscriptions delete",
    summary: "delete a webhook subscription",
    args: ["id"],
    async run(context) {
      const id = argAt(context, 0);
      await (await context.api()).request("DELETE", subscriptionPath(id));
      context.out.result({ id, deleted: true }, () => context.out.line(`deleted ${id}`));
      return undefined;
    },
  },
];
