/**
 * A line sink for the logger that coalesces the lines of one event-loop turn into one write, so
 * the per-request access log costs one `write(2)` per turn instead of one per request (stdout
 * is written synchronously when it is a file or a pipe). Lines keep their order; a turn's lines
 * go out from `setImmediate`, or at once when `maxPendingChars` is reached, which bounds both
 * the memory held and the size of one write. `flush()` writes what is pending now (process exit).
 */
export interface BatchedLineWriter {
  /** Queues one line (without its newline). */
  write(line: string): void;
  flush(): void;
}

export function createBatchedLineWriter(
  sink: (chunk: string) => void,
  options: { maxPendingChars?: number } = {},
): BatchedLineWriter {
  const maxPendingChars = options.maxPendingChars ?? 64 * 1024;
  let pending = "";
  let scheduled = false;

  function flush(): void {
    scheduled = false;
    if (pending === "") return;
    const chunk = pending;
    pending = "";
    sink(chunk);
  }

  return {
    write(line) {
      pending += `${line}\n`;
      if (pending.length >= maxPendingChars) {
        flush();
        return;
      }
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    flush,
  };
}
