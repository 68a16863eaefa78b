import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { StartedSandboxSession } from "@keyway/control-plane-api/sessions/schemas";

export type StartedSession = StartedSandboxSession;

/**
 * Where a sandbox's material lives: the plan's `home` files under `home` (the child's HOME),
 * its `workspace` files under `workspace` (the child's working directory), and Keyway's own
 * files (CA bundle, Node preload) under `home/.keyway`.
 */
export interface SandboxLayout {
  home: string;
  workspace: string;
  caBundlePath: string;
  nodePreloadPath: string;
}

export function sandboxLayout(home: string, workspace: string): SandboxLayout {
  return {
    home,
    workspace,
    caBundlePath: join(home, ".keyway", "ca-bundle.pem"),
    nodePreloadPath: join(home, ".keyway", "node-proxy-preload.mjs"),
  };
}

/**
 * CA variables set on top of the API's `caEnvVars`, all pointing at the one bundle (system roots
 * + gateway CA, so replacing a tool's default store loses nothing): pip, cargo, npm, Deno and the
 * AWS SDKs read their own variable instead of SSL_CERT_FILE. See docs/sandbox.md.
 */
export const EXTRA_CA_ENV_VARS = [
  "PIP_CERT",
  "CARGO_HTTP_CAINFO",
  "NPM_CONFIG_CAFILE",
  "DENO_CERT",
  "AWS_CA_BUNDLE",
] as const;

/** Variables a parent environment may hold that would send the child elsewhere or trust other CAs. */
const REPLACED_FROM_PARENT = [
  "ALL_PROXY",
  "all_proxy",
  "SSL_CERT_DIR",
  "NODE_USE_ENV_PROXY",
  "GLOBAL_AGENT_HTTP_PROXY",
] as const;

export interface SandboxFile {
  /** Absolute path. */
  path: string;
  content: string;
  mode: number;
}

/** Every file of the sandbox: the plan's runtime-client files, the CA bundle and the preload. */
export function sandboxFiles(
  session: Pick<StartedSession, "files" | "caCertPem">,
  layout: SandboxLayout,
  material: { caBundle: string; nodePreload: string },
): SandboxFile[] {
  return [
    ...session.files.map((file) => ({
      path: join(file.root === "home" ? layout.home : layout.workspace, ...file.path.split("/")),
      content: file.content,
      mode: file.mode,
    })),
    { path: layout.caBundlePath, content: material.caBundle, mode: 0o644 },
    { path: layout.nodePreloadPath, content: material.nodePreload, mode: 0o644 },
  ];
}

/**
 * The sandbox's environment (SPEC §9, docs/sandbox.md): the plan's variables, then Keyway's —
 * HOME, the proxy variables in both spellings with the plan-aware NO_PROXY, every CA variable
 * pointing at the bundle, and Node's proxy switches — so a plan can never redirect the proxy.
 * `base` (the parent environment for `sandbox run`, nothing for `sandbox env`) comes first,
 * without the proxy and CA variables it might carry and without any `KEYWAY_*` variable.
 */
export function sandboxEnvironment(
  session: Pick<StartedSession, "env" | "proxyEnv" | "caEnvVars">,
  layout: SandboxLayout,
  base: Readonly<Record<string, string | undefined>> = {},
): Record<string, string> {
  const caVars = [...new Set([...session.caEnvVars, ...EXTRA_CA_ENV_VARS])];
  const replaced = new Set<string>([
    ...Object.keys(session.proxyEnv).flatMap((k) => [k.toUpperCase(), k.toLowerCase()]),
    ...caVars.flatMap((k) => [k, k.toLowerCase()]),
    ...REPLACED_FROM_PARENT,
  ]);
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(base)) {
    // KEYWAY_TOKEN is the organization's API token: it never enters the sandbox.
    if (value === undefined || replaced.has(name) || name.startsWith("KEYWAY_")) continue;
    env[name] = value;
  }
  for (const { name, value } of session.env) env[name] = value;
  env.HOME = layout.home;
  Object.assign(env, session.proxyEnv);
  for (const name of caVars) env[name] = layout.caBundlePath;
  env.NODE_USE_ENV_PROXY = "1";
  // A file URL has no spaces or quotes (they are percent-encoded), so NODE_OPTIONS needs no quoting.
  const preload = `--import=${pathToFileURL(layout.nodePreloadPath).href}`;
  const inherited = env.NODE_OPTIONS?.trim();
  env.NODE_OPTIONS = inherited ? `${inherited} ${preload}` : preload;
  return env;
}
