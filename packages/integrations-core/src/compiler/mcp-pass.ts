import { stringify as stringifyToml } from "smol-toml";
import { canonicalJson, compareCodePoints, stableJsonFile } from "../canonical-json";
import type { McpConfigTarget, RuntimeFileDraft } from "../definition";
import { isJsonObject, type JsonObject, type JsonValue } from "../json";
import type { McpServer } from "../plan/schema";

/**
 * Writes every MCP server of the profile into an agent's config data at `target.path`, keyed by
 * server name, in the client's own entry shape. Returns new data; the input is not changed.
 */
export function applyMcpServers(
  data: JsonObject,
  target: McpConfigTarget,
  servers: readonly McpServer[],
): JsonObject {
  const root: JsonObject = structuredClone(data);
  let node: JsonObject = root;
  for (const key of target.path) {
    const next = node[key];
    if (next === undefined) {
      const created: JsonObject = {};
      node[key] = created;
      node = created;
    } else if (isJsonObject(next)) {
      node = next;
    } else {
      throw new TypeError(
        `MCP config path ${target.path.join(".")} crosses a non-object at ${key}`,
      );
    }
  }
  for (const server of [...servers].sort((a, b) => compareCodePoints(a.name, b.name))) {
    const entry: JsonObject = {};
    for (const [key, value] of Object.entries(target.renderServer(server))) {
      if (value !== undefined) entry[key] = value;
    }
    node[server.name] = entry;
  }
  return root;
}

/** Serialises a runtime file deterministically: keys sorted by code point at every level. */
export function serializeRuntimeFile(draft: RuntimeFileDraft): string {
  switch (draft.format) {
    case "text":
      return draft.text;
    case "json":
      return stableJsonFile(draft.data);
    case "toml": {
      const text = stringifyToml(sortDeep(draft.data));
      return text.endsWith("\n") ? text : `${text}\n`;
    }
  }
}

function sortDeep(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(sortDeep);
  if (!isJsonObject(value)) return value;
  // Round-trip through canonical JSON first so undefined members and key order never leak in.
  const canonical: unknown = JSON.parse(canonicalJson(value));
  if (!isJsonObject(canonical)) return value;
  const out: JsonObject = {};
  for (const key of Object.keys(canonical).sort(compareCodePoints))
    out[key] = sortDeep(canonical[key]!);
  return out;
}
