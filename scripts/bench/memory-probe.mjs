/**
 * Preloaded into a process under measurement (`node --expose-gc --import <this file> …`) by
 * `pnpm bench:tunnel-memory`: on SIGUSR2 it collects garbage (full GCs until the heap stops
 * shrinking) and writes one line `memory-probe {json}` with `process.memoryUsage()` to stderr.
 * A signal, not an HTTP endpoint, so the measured service runs unchanged.
 */
process.on("SIGUSR2", () => {
  const gc = globalThis.gc;
  if (typeof gc === "function") {
    let before = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 5; i++) {
      gc();
      const used = process.memoryUsage().heapUsed;
      if (used >= before) break;
      before = used;
    }
  }
  process.stderr.write(`memory-probe ${JSON.stringify(process.memoryUsage())}\n`);
});
