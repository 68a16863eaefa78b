import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { summarizeTrace } from "./webhooks-trace";

const T0 = 1_796_570_000_000;
let dir: string | undefined;

afterEach(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/**
 * 100 requests of 10 ms one after another, the two sent at 500 and 510 ms taking 80 ms; an
 * API scavenge inside the slow window, one far from it; a PostgreSQL statement logged as
 * PostgreSQL logs a multi-line one (the text on the next line), ending inside the slow window.
 */
function writeTrace(): string {
  dir = mkdtempSync(join(tmpdir(), "keyway-trace-test-"));
  const requests: string[] = [];
  for (let i = 0; i < 100; i++) {
    const sent = T0 + i * 10;
    const ms = i === 50 || i === 51 ? 80 : 10;
    requests.push(`${sent.toFixed(3)} ${(sent + ms).toFixed(3)} 202`);
  }
  writeFileSync(join(dir, "ingest-requests.txt"), `${requests.join("\n")}\n`);
  writeFileSync(
    join(dir, "api.4242.json"),
    JSON.stringify({
      pid: 4242,
      gcs: [
        [T0 + 520, 30, "scavenge"],
        [T0 + 300, 2, "scavenge"],
      ],
      stalls: [[T0 + 520, 32]],
    }),
  );
  writeFileSync(join(dir, "sender.4343.json"), JSON.stringify({ pid: 4343, gcs: [], stalls: [] }));
  const end = ((T0 + 560) / 1000).toFixed(3);
  writeFileSync(
    join(dir, "postgres.log"),
    [
      `${end} [777] client backend LOG:  duration: 20.500 ms  execute s1: `,
      "\t        update audit_log as a",
      "\t        set chain = v.chain",
      `${end} [778] client backend LOG:  duration: 12.000 ms  execute s2: COMMIT`,
      "",
    ].join("\n"),
  );
  return dir;
}

describe("summarizeTrace", () => {
  it("lines the slowest requests up with the pauses their windows overlapped", () => {
    const summary = summarizeTrace(writeTrace());
    expect(summary?.requests).toBe(100);
    expect(summary?.slow).toBe(2);
    const scavenges = summary?.kinds["api GC scavenge"];
    expect(scavenges?.slowShare).toBe(1);
    expect(scavenges?.allShare).toBeCloseTo(6 / 100);
    expect(scavenges?.maxMs).toBe(30);
    expect(summary?.kinds["api event-loop stall > 3 ms"]?.slowShare).toBe(1);
    expect(summary?.clusters[0]).toEqual([0.5, 2]);
  });

  it("names a multi-line statement by its first words on the next line", () => {
    const kinds = summarizeTrace(writeTrace())?.kinds ?? {};
    const update = kinds["PostgreSQL statement > 10 ms (update audit_log)"];
    expect(update?.slowShare).toBe(1);
    expect(update?.meanMs).toBeCloseTo(20.5);
    expect(kinds["PostgreSQL statement > 10 ms (commit)"]?.slowShare).toBe(1);
  });
});
