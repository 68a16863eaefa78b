import { z } from "zod";

/**
 * An operator-configured http(s) base URL (e.g. `https://api.openai.com/v1`) that a route can be
 * derived from with `splitBaseUrl` and a client config can point at. Query, fragment and userinfo
 * are refused: a route matches on host and path only, and credentials never live in config.
 */
export const httpBaseUrlSchema = z.url({ protocol: /^https?$/ }).refine((value) => {
  // zod runs refinements even after the format check failed; that failure is already reported.
  if (!URL.canParse(value)) return true;
  const url = new URL(value);
  return !url.search && !url.hash && !url.username && !url.password;
}, "base URL must not carry a query, fragment or credentials");
