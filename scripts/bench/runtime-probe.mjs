/**
 * Preloaded into a process under measurement (`node --import <this file> …`) by
 * `pnpm bench:webhooks --trace DIR`: records the process's own pauses with wall-clock times, so a
 * slow request can be lined up with them afterwards.
 *
 * - every garbage collection (V8's kind and its pause), from a `PerformanceObserver`;
 * - event-loop stalls: a 5 ms timer whose callback runs more than 3 ms late was held up by
 *   something on the loop (a long callback, a GC, the process not being scheduled).
 *
 * Written as JSON to `KEYWAY_RUNTIME_PROBE_FILE` when the process exits (`pid` appended to the
 * name); the service itself runs unchanged.
 */
import { writeFileSync } from "node:fs";
import { constants, PerformanceObserver } from "node:perf_hooks";

const file = process.env.KEYWAY_RUNTIME_PROBE_FILE;
if (file) {
  const origin = performance.timeOrigin;
  const KINDS = {
    [constants.NODE_PERFORMANCE_GC_MINOR]: "scavenge",
    [constants.NODE_PERFORMANCE_GC_MAJOR]: "mark-compact",
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weak-callbacks",
  };
  /** [start epoch ms, duration ms, kind] */
  const gcs = [];
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gcs.push([origin + entry.startTime, entry.duration, KINDS[entry.detail?.kind] ?? "other"]);
    }
  }).observe({ entryTypes: ["gc"] });

  /** [start epoch ms, stall ms] */
  const stalls = [];
  const PERIOD_MS = 5;
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    const late = now - last - PERIOD_MS;
    if (late > 3) stalls.push([origin + last + PERIOD_MS, late]);
    last = now;
  }, PERIOD_MS).unref();

  process.once("exit", () => {
    writeFileSync(`${file}.${process.pid}.json`, JSON.stringify({ pid: process.pid, gcs, stalls }));
  });
}
