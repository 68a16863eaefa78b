/**
 * Compiler benchmark: a profile of 10, 100 and 1,000 bindings from the real catalogue (two
 * agents, the rest generic REST APIs on their own hosts, every fourth with an MCP server that the
 * MCP pass writes into both agents' config files). Reports time per compile, time per binding and
 * growth between sizes; the baseline, measured in the same run, is hashing the canonical JSON of
 * the same plan — the least any content-addressed compile must do.
 *
 *   pnpm bench:compile [--json FILE]
 */
import {
  type BindingInput,
  type ConnectionInput,
  canonicalDigest,
  compilePlan,
  type TargetInput,
} from "@keyway/integrations-core";
import { createCatalogueRegistry } from "@keyway/integrations-definitions";
import { jsonOutputPath, machineFacts, median, timeMs, writeJson } from "./bench-lib";

const SIZES = [10, 100, 1000];
const TARGET_MS_AT_1000 = 250;
const registry = createCatalogueRegistry();

function profile(size: number) {
  const targets: TargetInput[] = [
    { id: "tgt_openai", targetKey: "openai", variantId: "openai", enabled: true, config: {} },
    {
      id: "tgt_anthropic",
      targetKey: "anthropic",
      variantId: "anthropic",
      enabled: true,
      config: {},
    },
  ];
  const connections: ConnectionInput[] = [
    {
      id: "conn_openai",
      targetId: "tgt_openai",
      methodId: "api-key",
      status: "active",
      config: {},
    },
    {
      id: "conn_anthropic",
      targetId: "tgt_anthropic",
      methodId: "api-key",
      status: "active",
      config: {},
    },
  ];
  const bindings: BindingInput[] = [
    {
      id: "bind_codex",
      kind: "agent",
      connectionId: "conn_openai",
      config: { model: "gpt-6.2-sol" },
    },
    {
      id: "bind_claude",
      kind: "agent",
      connectionId: "conn_anthropic",
      config: { model: "claude-sonnet-5-5" },
    },
  ];
  for (let i = 0; i < size - 2; i++) {
    const id = String(i).padStart(4, "0");
    targets.push({
      id: `tgt_api_${id}`,
      targetKey: `api-${id}`,
      variantId: "http-api",
      enabled: true,
      config: {
        baseUrl: `https://api-${id}.example.com/v1`,
        allowedMethods: ["GET", "POST", "PATCH"],
        ...(i % 4 === 0 ? { mcpServerUrl: `https://mcp-${id}.example.com/mcp` } : {}),
      },
    });
    connections.push({
      id: `conn_api_${id}`,
      targetId: `tgt_api_${id}`,
      methodId: "api-key",
      status: "active",
      config: {},
    });
    bindings.push({
      id: `bind_api_${id}`,
      kind: "connector",
      connectionId: `conn_api_${id}`,
      config: { methods: ["GET", "POST"] },
    });
  }
  return { profileVersionId: `pver_${size}`, registry, targets, connections, bindings };
}

function main(): void {
  const jsonFile = jsonOutputPath();
  const rows = [];
  let previousMs: number | undefined;
  for (const size of SIZES) {
    const input = profile(size);
    const first = compilePlan(input);
    if (!first.ok)
      throw new Error(`size ${size} failed: ${JSON.stringify(first.errors.slice(0, 3))}`);
    const runs = size >= 1000 ? 15 : size >= 100 ? 40 : 200;
    for (let i = 0; i < Math.min(runs, 10); i++) compilePlan(input);
    const compileTimes = Array.from({ length: runs }, () => timeMs(() => compilePlan(input)));
    const digestTimes = Array.from({ length: runs }, () =>
      timeMs(() => canonicalDigest(first.plan)),
    );
    const ms = median(compileTimes);
    rows.push({
      bindings: size,
      routes: first.plan.routes.length,
      mcpServers: first.plan.mcpServers.length,
      compileMs: ms,
      usPerBinding: (ms * 1000) / size,
      growthVsPrevious: previousMs === undefined ? null : ms / previousMs,
      baselineDigestMs: median(digestTimes),
      compileOverBaseline: ms / median(digestTimes),
      runs,
    });
    previousMs = ms;
  }
  const at1000 = rows.find((r) => r.bindings === 1000);
  const figures = {
    rows,
    targetMsAt1000: TARGET_MS_AT_1000,
    meetsTarget: at1000 !== undefined && at1000.compileMs < TARGET_MS_AT_1000,
    ...machineFacts(`pnpm bench:compile${jsonFile ? ` --json ${jsonFile}` : ""}`),
  };
  console.log(`compile benchmark — ${figures.cpu}, node ${figures.node}`);
  console.table(
    rows.map((r) => ({
      bindings: r.bindings,
      routes: r.routes,
      "MCP servers": r.mcpServers,
      "compile (ms, median)": r.compileMs.toFixed(2),
      "µs / binding": r.usPerBinding.toFixed(1),
      "growth vs previous size":
        r.growthVsPrevious === null ? "-" : `${r.growthVsPrevious.toFixed(1)}x`,
      "baseline digest (ms)": r.baselineDigestMs.toFixed(2),
      "compile / baseline": `${r.compileOverBaseline.toFixed(1)}x`,
    })),
  );
  console.log(
    `target 1,000 bindings < ${TARGET_MS_AT_1000} ms: ${figures.meetsTarget ? "met" : "NOT met"}`,
  );
  writeJson(jsonFile, figures);
}

main();
