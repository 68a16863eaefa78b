/**
 * Preloaded into the API (`node --import <this file> …`) by `pnpm bench:webhooks --alloc DIR`:
 * what the ingest phase allocates and promotes. The first SIGUSR2 starts a measurement window, the
 * second ends it and writes `KEYWAY_ALLOC_PROBE_FILE.<pid>.json`:
 *
 * - every GC in the window from `v8.GCProfiler` (its kind, its cost, the heap spaces before and
 *   after), summed into bytes allocated (the young generation's growth between collections),
 *   bytes promoted (old and large-object spaces' growth across each scavenge), and the number and
 *   cost of mark-compacts;
 * - with `KEYWAY_ALLOC_PROBE_SITES=1`, also a sampling heap profile that keeps the samples of
 *   collected objects (`HeapProfiler.startSampling` with both `includeObjectsCollectedBy…`):
 *   where the window's allocations were made, not only what is still alive at its end.
 *
 * The service itself runs unchanged.
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import v8 from "node:v8";

const file = process.env.KEYWAY_ALLOC_PROBE_FILE;
const sites = process.env.KEYWAY_ALLOC_PROBE_SITES === "1";
if (file) {
  /** @type {v8.GCProfiler | undefined} */
  let profiler;
  /** @type {Session | undefined} */
  let session;
  let startedAt = 0;
  let startHeap = 0;
  const post = (method, params) =>
    new Promise((resolve, reject) => {
      session?.post(method, params, (error, result) => (error ? reject(error) : resolve(result)));
    });

  process.on("SIGUSR2", () => {
    if (profiler === undefined) {
      startedAt = performance.now();
      startHeap = v8.getHeapStatistics().used_heap_size;
      profiler = new v8.GCProfiler();
      profiler.start();
      if (sites) {
        session = new Session();
        session.connect();
        post("HeapProfiler.startSampling", {
          samplingInterval: 8192,
          includeObjectsCollectedByMajorGC: true,
          includeObjectsCollectedByMinorGC: true,
        }).catch(() => {});
      }
      return;
    }
    const windowMs = performance.now() - startedAt;
    const endHeap = v8.getHeapStatistics().used_heap_size;
    const data = profiler.stop();
    profiler = undefined;
    const summary = summarize(data, startHeap, endHeap, windowMs);
    const write = (profile) =>
      writeFileSync(
        `${file}.${process.pid}.json`,
        JSON.stringify({ pid: process.pid, ...summary, ...(profile ? { profile } : {}) }),
      );
    if (session === undefined) {
      write(undefined);
      return;
    }
    post("HeapProfiler.stopSampling", {})
      .then((result) => write(result.profile))
      .catch(() => write(undefined))
      .finally(() => session?.disconnect());
  });
}

const OLD = new Set([
  "old_space",
  "code_space",
  "large_object_space",
  "code_large_object_space",
  "trusted_space",
  "trusted_large_object_space",
  "shared_space",
  "shared_large_object_space",
]);

function spaces(stats, which) {
  let sum = 0;
  for (const space of stats.heapSpaceStatistics) {
    if (which.has(space.spaceName)) sum += space.spaceUsedSize;
  }
  return sum;
}

/** GCProfiler's records → bytes allocated and promoted in the window, GCs by kind. */
function summarize(data, startHeap, endHeap, windowMs) {
  let allocated = 0;
  let promoted = 0;
  let lastAfter = startHeap;
  const kinds = {};
  for (const gc of data.statistics) {
    const before = gc.beforeGC.heapStatistics.usedHeapSize;
    allocated += Math.max(0, before - lastAfter);
    lastAfter = gc.afterGC.heapStatistics.usedHeapSize;
    const kind = gc.gcType;
    kinds[kind] ??= { count: 0, costUs: 0, maxUs: 0 };
    const entry = kinds[kind];
    entry.count += 1;
    entry.costUs += gc.cost;
    entry.maxUs = Math.max(entry.maxUs, gc.cost);
    if (kind === "Scavenge" || kind === "MinorMarkSweep") {
      promoted += Math.max(0, spaces(gc.afterGC, OLD) - spaces(gc.beforeGC, OLD));
    }
  }
  allocated += Math.max(0, endHeap - lastAfter);
  return { windowMs, allocatedBytes: allocated, promotedBytes: promoted, gcs: kinds };
}
