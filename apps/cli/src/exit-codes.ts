/**
 * The CLI's exit codes (documented in the README). Scripts branch on these, so they never change
 * meaning: add new ones at the end.
 */
export const EXIT = {
  /** The command did what was asked. */
  ok: 0,
  /** The API answered with an error, or the command ran and found a problem (a broken audit chain, a failed connection test). */
  api: 1,
  /** Wrong arguments, a missing setting (no URL or token), or a file that cannot be read. */
  usage: 2,
  /** The API (or the database, for `keys rotate`) could not be reached. */
  unreachable: 3,
  /** Gave up waiting (`connect oauth`, `connect github-app`). */
  timeout: 4,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];
