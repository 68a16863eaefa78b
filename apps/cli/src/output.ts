import { formatTable } from "./table";

/**
 * How commands print: with `--json` the API's response body (or the command's own documented
 * shape) as indented JSON; otherwise tables and `label: value` lines for people.
 */
export interface Output {
  readonly json: boolean;
  /** Prints `value` as JSON with `--json`, else calls `human`. */
  result(value: unknown, human: () => void): void;
  table(
    headers: readonly string[],
    rows: readonly (readonly Cell[])[],
    alignRight?: readonly number[],
  ): void;
  /** Aligned `label: value` lines; undefined values are left out. */
  fields(pairs: readonly (readonly [string, Cell | undefined])[]): void;
  line(text?: string): void;
}

export type Cell = string | number | boolean | null;

export function createOutput(write: (text: string) => void, json: boolean): Output {
  return {
    json,
    result(value, human) {
      if (json) write(`${JSON.stringify(value, null, 2)}\n`);
      else human();
    },
    table(headers, rows, alignRight = []) {
      if (rows.length === 0) {
        write("(none)\n");
        return;
      }
      write(
        `${formatTable(
          headers,
          rows.map((row) => row.map(cellText)),
          alignRight,
        )}\n`,
      );
    },
    fields(pairs) {
      const shown = pairs.filter((pair): pair is readonly [string, Cell] => pair[1] !== undefined);
      const width = Math.max(0, ...shown.map(([label]) => label.length));
      for (const [label, value] of shown)
        write(`${`${label}:`.padEnd(width + 2)}${cellText(value)}\n`);
    },
    line(text = "") {
      write(`${text}\n`);
    },
  };
}

function cellText(value: Cell): string {
  if (value === null || value === "") return "-";
  if (typeof value === "boolean") return value ? "yes" : "no";
  return String(value);
}

/** `2026-12-05T22:31:13.123Z` → `2026-12-05 22:31:13` (tables stay narrow; --json keeps the full value). */
export function shortTime(value: string | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  return value.replace("T", " ").replace(/\.\d+Z$|Z$/, "");
}
