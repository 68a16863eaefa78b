/**
 * Repository names as a binding writes them (`owner/repo`) and the git smart-HTTP paths a client
 * uses for them.
 */
export interface RepositoryRef {
  owner: string;
  name: string;
}

// Owners are GitHub logins: letters, digits and hyphens; `_` appears in Enterprise Managed User
// logins (`login_shortcode`). Repository names are letters, digits, `-`, `_` and `.`; all of these
// are RFC 3986 unreserved, so a route prefix built from them needs no percent-encoding.
const OWNER = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;
const NAME = /^[A-Za-z0-9._-]{1,100}$/;

/**
 * Parses `owner/repo`. Refuses `.` and `..` (they would be dot segments in a route path) and a
 * name ending in `.git`: GitHub drops that suffix from repository names, and accepting it would
 * make `/owner/repo.git` ambiguous between two repositories.
 */
export function parseRepository(value: string): RepositoryRef | undefined {
  const parts = value.split("/");
  if (parts.length !== 2) return undefined;
  const [owner, name] = parts as [string, string];
  if (!OWNER.test(owner) || !NAME.test(name)) return undefined;
  if (name === "." || name === ".." || name.toLowerCase().endsWith(".git")) return undefined;
  return { owner, name };
}

/**
 * The request paths a git client uses for one repository, on a web host whose base URL has
 * `webPathPrefix` ("/" for a host at its root).
 *
 * Git accepts a remote with or without `.git` and derives `info/refs`, `git-upload-pack` and
 * `git-receive-pack` from it, so both spellings are routed. Only these exact endpoints are
 * listed rather than `/owner/repo` as a whole: that prefix would also inject the credential into
 * the repository's web pages (`/owner/repo/issues`, `/owner/repo/settings`), which a sandbox has
 * no business browsing as the connection. Git LFS talks to `<remote>.git/info/lfs` whichever
 * spelling the remote uses. The push endpoint is listed only when `push` is true; without it a
 * push is refused by the gateway even if the credential could write.
 */
export function gitPathPrefixes(
  webPathPrefix: string,
  repository: RepositoryRef,
  options: { push: boolean },
): string[] {
  const base = webPathPrefix === "/" ? "" : webPathPrefix;
  const { owner, name } = repository;
  const prefixes: string[] = [];
  for (const remotePath of [`${base}/${owner}/${name}.git`, `${base}/${owner}/${name}`]) {
    prefixes.push(`${remotePath}/info/refs`, `${remotePath}/git-upload-pack`);
    if (options.push) prefixes.push(`${remotePath}/git-receive-pack`);
  }
  prefixes.push(`${base}/${owner}/${name}.git/info/lfs`);
  return prefixes;
}

/** Segment-boundary prefix test, as route matching defines it (`/v1` covers `/v1/x`, not `/v10`). */
export function isPathUnder(path: string, prefix: string): boolean {
  return prefix === "/" || path === prefix || path.startsWith(`${prefix}/`);
}
