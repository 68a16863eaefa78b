import {
  type BindingContext,
  type CompileBindingOutput,
  type JsonObject,
  splitBaseUrl,
} from "@keyway/integrations-core";
import type { OpenaiBindingConfig } from "./binding-config-schema";
import { CODEX_CLIENT_ID, CODEX_CONFIG_FILE_ID } from "./codex-mcp-config";
import type { OpenaiTargetConfig } from "./target-config-schema";

/**
 * Codex's built-in `openai` provider cannot be redefined from config.toml (openai/codex
 * `docs/config.md`: entries only take effect when the key is new), so Keyway registers its own.
 */
export const CODEX_MODEL_PROVIDER_ID = "keyway-openai";

/** The variable Codex's provider `env_key` names; Codex sends its value as `Bearer <value>`. */
export const CODEX_API_KEY_ENV = "KEYWAY_OPENAI_API_KEY";

/**
 * Not a secret. Codex refuses to start while the `env_key` variable is empty, so it gets this
 * stand-in; the gateway drops the client's `Authorization` on the route and injects the real key.
 */
export const CODEX_API_KEY_PLACEHOLDER = "keyway-placeholder-openai-api-key";

export function compileOpenaiBinding(
  input: BindingContext<OpenaiTargetConfig, unknown, OpenaiBindingConfig>,
): CompileBindingOutput {
  const { model, reasoningEffort, instructions } = input.binding.config;
  const { origin, host, pathPrefix } = splitBaseUrl(input.target.config.apiBaseUrl);
  // Rebuilt from its parts so Codex sends exactly the host and path the route matches.
  const apiBaseUrl = pathPrefix === "/" ? origin : `${origin}${pathPrefix}`;

  const codexConfig: JsonObject = {
    model,
    model_provider: CODEX_MODEL_PROVIDER_ID,
    // Codex's startup update check asks api.github.com for its latest release: traffic the
    // sandbox has no use for, which a GitHub binding's API route would otherwise meet.
    // (`check_for_update_on_startup`, a top-level key of Codex's config, 0.171.0.)
    check_for_update_on_startup: false,
    ...(reasoningEffort !== undefined ? { model_reasoning_effort: reasoningEffort } : {}),
    // `developer_instructions`: "Developer instructions inserted as a `developer` role message"
    // (openai/codex `codex-rs/core/config.schema.json`).
    ...(instructions !== undefined ? { developer_instructions: instructions } : {}),
    model_providers: {
      [CODEX_MODEL_PROVIDER_ID]: {
        name: "OpenAI (via Keyway)",
        // The canonical API URL: the gateway intercepts this host, so no local proxy URL is needed.
        base_url: apiBaseUrl,
        wire_api: "responses",
        env_key: CODEX_API_KEY_ENV,
      },
    },
  };

  return {
    routes: [
      {
        match: { hosts: [host], pathPrefixes: [pathPrefix] },
        upstream: { baseUrl: origin },
        auth: { type: "bearer", name: "authorization", scheme: "Bearer" },
        credential: { secretType: "api_key" },
      },
    ],
    runtimeClients: [
      {
        clientId: CODEX_CLIENT_ID,
        files: [
          {
            fileId: CODEX_CONFIG_FILE_ID,
            root: "home",
            path: ".codex/config.toml",
            format: "toml",
            data: codexConfig,
          },
        ],
        env: { [CODEX_API_KEY_ENV]: CODEX_API_KEY_PLACEHOLDER },
      },
    ],
    agentRuntimes: [{ clientId: CODEX_CLIENT_ID, displayName: "Codex", command: ["codex"] }],
  };
}
