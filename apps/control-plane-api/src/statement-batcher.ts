/**
 * Group commit in the application: items submitted while earlier statements are in flight wait
 * and go to the database together, as one statement (one round trip, one transaction, one WAL
 * flush) instead of one each. Each caller's promise settles when the statement holding its item
 * has returned — committed, so durable when the statement commits synchronously — or rejects
 * with that statement's error.
 *
 * Used on the credential-resolution path (spent gateway assertions, resolution audit entries)
 * and by webhook ingest (`webhooks/event-writer.ts`: one transaction per batch of events):
 * `pnpm bench:resolve --concurrency 1,16,64` showed one statement per resolution for each of
 * them costing more CPU in PostgreSQL and the API than the reads. A lone item waits only for
 * the current event-loop turn to end, so one resolution at a time is not slowed.
 */
export interface StatementBatcher<I, O> {
  submit(item: I): Promise<O>;
}

export interface StatementBatcherOptions<I, O> {
  /** Runs one statement for `items`; answers one result per item, in order. */
  run(items: readonly I[]): Promise<readonly O[]>;
  /** Most items per statement. */
  maxBatch?: number;
  /** Statements running at once; items arriving while all run wait for the next one. */
  maxInFlight?: number;
}

interface Waiting<I, O> {
  item: I;
  resolve(result: O): void;
  reject(error: unknown): void;
}

export function createStatementBatcher<I, O>(
  options: StatementBatcherOptions<I, O>,
): StatementBatcher<I, O> {
  const maxBatch = options.maxBatch ?? 256;
  const maxInFlight = options.maxInFlight ?? 2;
  let waiting: Waiting<I, O>[] = [];
  let inFlight = 0;
  let scheduled = false;

  function schedule(): void {
    if (scheduled || inFlight >= maxInFlight || waiting.length === 0) return;
    scheduled = true;
    // After the current turn: every item submitted in it joins the same statement.
    setImmediate(flush);
  }

  function flush(): void {
    scheduled = false;
    while (inFlight < maxInFlight && waiting.length > 0) {
      const batch = waiting.length <= maxBatch ? waiting : waiting.slice(0, maxBatch);
      waiting = batch === waiting ? [] : waiting.slice(maxBatch);
      inFlight++;
      runBatch(batch).finally(() => {
        inFlight--;
        schedule();
      });
    }
  }

  async function runBatch(batch: Waiting<I, O>[]): Promise<void> {
    try {
      const results = await options.run(batch.map((w) => w.item));
      if (results.length !== batch.length) {
        throw new Error(`batched statement answered ${results.length} of ${batch.length} items`);
      }
      for (const [i, w] of batch.entries()) w.resolve(results[i] as O);
    } catch (error) {
      for (const w of batch) w.reject(error);
    }
  }

  return {
    submit(item) {
      return new Promise<O>((resolve, reject) => {
        waiting.push({ item, resolve, reject });
        schedule();
      });
    },
  };
}
