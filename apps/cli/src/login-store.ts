import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Env } from "@keyway/config";
import { configError } from "./api-client";

/**
 * `keyway login` keeps the API URL and token in `$XDG_CONFIG_HOME/keyway/credentials.json`
 * (else `~/.config/keyway/credentials.json`), readable by its owner only (0600, directory 0700).
 */
export interface StoredLogin {
  url: string;
  token: string;
}

function isStoredLogin(value: unknown): value is StoredLogin {
  if (typeof value !== "object" || value === null) return false;
  const { url, token } = value as Record<string, unknown>;
  return typeof url === "string" && typeof token === "string";
}

export function loginFilePath(env: Env): string {
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg?.startsWith("/")) return join(xdg, "keyway", "credentials.json");
  if (env.HOME === undefined || env.HOME === "")
    throw configError("neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep the login");
  return join(env.HOME, ".config", "keyway", "credentials.json");
}

export async function readStoredLogin(env: Env): Promise<StoredLogin | undefined> {
  let path: string;
  try {
    path = loginFilePath(env);
  } catch {
    return undefined;
  }
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw configError(`cannot read ${path}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!isStoredLogin(parsed))
    throw configError(`${path} is not a keyway login file; run keyway login again`);
  return { url: parsed.url, token: parsed.token };
}

export async function storeLogin(env: Env, login: StoredLogin): Promise<string> {
  const path = loginFilePath(env);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFile(path, `${JSON.stringify(login, null, 2)}\n`, { mode: 0o600 });
  // `mode` applies only when the file is created; a file left by an earlier login keeps its own.
  await chmod(path, 0o600);
  return path;
}

export async function removeStoredLogin(env: Env): Promise<{ path: string; removed: boolean }> {
  const path = loginFilePath(env);
  const existed = await readFile(path).then(
    () => true,
    () => false,
  );
  await rm(path, { force: true });
  return { path, removed: existed };
}
