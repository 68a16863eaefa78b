import {
  type AnyIntegrationDefinition,
  createRegistry,
  type IntegrationRegistry,
} from "@keyway/integrations-core";
import { anthropicDefinition } from "./anthropic/definition";
import { atlassianDefinition } from "./atlassian/definition";
import { githubCloudDefinition } from "./github-cloud/definition";
import { githubEnterpriseServerDefinition } from "./github-enterprise-server/definition";
import { httpApiDefinition } from "./http-api/definition";
import { linearDefinition } from "./linear/definition";
import { openaiDefinition } from "./openai/definition";
import { slackDefinition } from "./slack/definition";

export { anthropicDefinition } from "./anthropic/definition";
export { atlassianDefinition } from "./atlassian/definition";
export {
  type AppWebhookDelivery,
  githubAppWebhookTarget,
  listAppWebhookDeliveries,
  redeliverAppWebhookDelivery,
  unansweredDeliveries,
} from "./github/app-webhook-deliveries";
export { verifyInstallationOwnership } from "./github/installation-verification";
export { githubCloudDefinition } from "./github-cloud/definition";
export { githubEnterpriseServerDefinition } from "./github-enterprise-server/definition";
export { httpApiDefinition } from "./http-api/definition";
export { linearDefinition } from "./linear/definition";
export { openaiDefinition } from "./openai/definition";
export { slackDefinition } from "./slack/definition";

/** The v1 catalogue (SPEC §5), in a fixed order. */
export const catalogue: readonly AnyIntegrationDefinition[] = Object.freeze([
  openaiDefinition,
  anthropicDefinition,
  githubCloudDefinition,
  githubEnterpriseServerDefinition,
  linearDefinition,
  slackDefinition,
  atlassianDefinition,
  httpApiDefinition,
]);

/** A registry holding the whole catalogue. */
export function createCatalogueRegistry(): IntegrationRegistry {
  return createRegistry(catalogue);
}
