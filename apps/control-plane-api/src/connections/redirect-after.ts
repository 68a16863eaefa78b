import type { AppDeps } from "../deps";

/**
 * `redirectAfter` of a connection flow (OAuth2, GitHub App) must be an http(s) URL on the API's
 * own origin or on an origin the operator allowed (`api.allowed_redirect_origins`): anything else
 * would make Keyway an open redirect. Credentials in the URL are refused too (a phishing aid).
 */
export function isAllowedRedirect(
  settings: Pick<AppDeps["settings"], "publicUrl" | "allowedRedirectOrigins">,
  target: string,
): boolean {
  if (!URL.canParse(target)) return false;
  const url = new URL(target);
  if (url.protocol !== "https:" && url.protocol !== "http:") return false;
  if (url.username !== "" || url.password !== "") return false;
  const allowed = new Set([
    new URL(settings.publicUrl).origin,
    ...settings.allowedRedirectOrigins.map((origin) => new URL(origin).origin),
  ]);
  return allowed.has(url.origin);
}
