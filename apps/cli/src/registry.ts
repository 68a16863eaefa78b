import { auditCommands } from "./commands/audit";
import { connectionCommands } from "./commands/connections";
import { keyCommands } from "./commands/keys";
import { loginCommands } from "./commands/login";
import { organizationCommands, tokenCommands } from "./commands/organizations";
import { profileCommands } from "./commands/profiles";
import { sandboxCommands } from "./commands/sandbox";
import { sessionCommands } from "./commands/sessions";
import { targetCommands } from "./commands/targets";
import { webhookCommands } from "./commands/webhooks";
import type { Command } from "./context";

/**
 * Every `keyway` command, in the order `keyway help` lists them. A resource's commands live in
 * `commands/<resource>.ts`; adding a resource is one import and one line here.
 */
export const COMMANDS: readonly Command[] = [
  ...loginCommands,
  ...targetCommands,
  ...organizationCommands,
  ...tokenCommands,
  ...connectionCommands,
  ...profileCommands,
  ...sessionCommands,
  ...sandboxCommands,
  ...webhookCommands,
  ...auditCommands,
  ...keyCommands,
];
