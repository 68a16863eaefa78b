import { type CompileResult, toJsonSchemaForm } from "@keyway/integrations-core";
import { describe, expect, it } from "vitest";
import {
  compileSingle,
  type DefinitionFixture,
  describeDefinitionContract,
} from "../testing/definition-contract";
import { slackDefinition } from "./definition";

const fixture: DefinitionFixture = {
  target: {
    config: { clientId: "1234567890.0987654321" },
    secrets: {
      clientSecret: "slack-client-secret-4e1d",
      signingSecret: "slack-signing-secret-90ab",
    },
  },
  connection: {
    methodId: "oauth2",
    externalSubjectId: "T0123ABCD",
    secretValues: ["xoxb-fixture-bot-token", "xoxe-1-fixture-refresh-token"],
  },
  binding: { config: { defaultChannel: "#eng-alerts" } },
  invalidBinding: {
    config: { defaultChannel: "Eng Alerts" },
    issues: [{ code: "slack.invalid_channel", field: "defaultChannel" }],
  },
};

describeDefinitionContract(slackDefinition, fixture);
describeDefinitionContract(slackDefinition, {
  ...fixture,
  connection: { methodId: "bot-token", secretValues: ["xoxb-hand-installed-bot-token"] },
});

function planOf(result: CompileResult) {
  if (!result.ok) throw new Error(JSON.stringify(result.errors, null, 2));
  return result.plan;
}

const webApiRoute = {
  id: "bind_fixture.route.0",
  bindingId: "bind_fixture",
  match: { hosts: ["slack.com"], pathPrefixes: ["/api"] },
  upstream: { baseUrl: "https://slack.com" },
  auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
};

describe("slack compile output", () => {
  it("routes the Web API with the OAuth2 bot token as Bearer", () => {
    const plan = planOf(compileSingle(slackDefinition, fixture));
    expect(plan.routes).toEqual([
      {
        ...webApiRoute,
        credential: { connectionId: "conn_fixture", secretType: "oauth2_access_token" },
      },
    ]);
    expect(plan.mcpServers).toEqual([]);
    expect(plan.files).toEqual([]);
    expect(plan.env).toEqual([]);
  });

  it("routes the Web API with a hand-installed bot token as Bearer", () => {
    const plan = planOf(
      compileSingle(slackDefinition, {
        ...fixture,
        connection: { methodId: "bot-token", secretValues: [] },
      }),
    );
    expect(plan.routes).toEqual([
      { ...webApiRoute, credential: { connectionId: "conn_fixture", secretType: "api_key" } },
    ]);
  });

  it("accepts an empty binding config and channel ids", () => {
    expect(compileSingle(slackDefinition, fixture, { bindingConfig: {} }).ok).toBe(true);
    expect(
      compileSingle(slackDefinition, fixture, { bindingConfig: { defaultChannel: "C0123ABCDE" } })
        .ok,
    ).toBe(true);
  });

  it.each([["#General"], ["#with space"], ["c0123abcde"], ["#"]])(
    "rejects %s as a channel",
    (channel) => {
      const result = compileSingle(slackDefinition, fixture, {
        bindingConfig: { defaultChannel: channel },
      });
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.errors[0]?.issues?.[0]?.code).toBe("slack.invalid_channel");
    },
  );

  it("parses the registry's default target config to Slack's public URLs", () => {
    expect(slackDefinition.targetConfigSchema.parse({})).toEqual({
      apiUrl: "https://slack.com/api",
      authorizationUrl: "https://slack.com/oauth/v2/authorize",
      tokenUrl: "https://slack.com/api/oauth.v2.access",
      scopes: ["channels:history", "channels:read", "chat:write", "users:read"],
      userScopes: [],
      pkce: false,
    });
    expect(slackDefinition.targetSecretSchema.parse({})).toEqual({});
  });

  it("renders forms with its hints", () => {
    toJsonSchemaForm(slackDefinition.targetConfigSchema, {
      hints: slackDefinition.targetConfigForm ?? {},
    });
    toJsonSchemaForm(slackDefinition.targetSecretSchema, {
      hints: slackDefinition.targetSecretForm ?? {},
      secret: true,
    });
    const binding = toJsonSchemaForm(slackDefinition.bindingConfigSchema, {
      hints: slackDefinition.bindingForm ?? {},
    });
    expect(binding.type).toBe("object");
  });
});
