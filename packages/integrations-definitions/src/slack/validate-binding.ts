import type { BindingContext, BindingIssue } from "@keyway/integrations-core";
import type { SlackBindingConfig } from "./binding-config-schema";

/** Conversation ids: public (C), private (G) and direct (D) channels. */
const CHANNEL_ID = /^[CGD][A-Z0-9]{8,}$/;
/** Channel names are lower case, at most 80 characters, without spaces or periods. */
const CHANNEL_NAME = /^#[\p{Ll}\p{Lo}\p{N}_-]{1,80}$/u;

export function validateSlackBinding(
  ctx: BindingContext<unknown, unknown, SlackBindingConfig>,
): BindingIssue[] {
  const channel = ctx.binding.config.defaultChannel;
  if (channel === undefined || CHANNEL_ID.test(channel) || CHANNEL_NAME.test(channel)) return [];
  return [
    {
      code: "slack.invalid_channel",
      field: "defaultChannel",
      message: `${JSON.stringify(channel)} is neither a Slack channel id (e.g. C0123ABCD) nor a #channel-name`,
    },
  ];
}
