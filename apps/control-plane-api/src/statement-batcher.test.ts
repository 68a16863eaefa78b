import { describe, expect, it } from "vitest";
import { createStatementBatcher } from "./statement-batcher";

/** A statement runner that records each batch and answers when told to. */
function recordingRunner() {
  const batches: number[][] = [];
  const pending: (() => void)[] = [];
  return {
    batches,
    /** Lets every statement started so far answer. */
    releaseAll() {
      for (const release of pending.splice(0)) release();
    },
    run(items: readonly number[]): Promise<readonly string[]> {
      batches.push([...items]);
      return new Promise((resolve) => {
        pending.push(() => resolve(items.map((item) => `done ${item}`)));
      });
    },
  };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe("createStatementBatcher", () => {
  it("runs the items submitted in one turn as one statement, each caller getting its result", async () => {
    const runner = recordingRunner();
    const batcher = createStatementBatcher<number, string>({ run: (items) => runner.run(items) });
    const results = Promise.all([1, 2, 3].map((item) => batcher.submit(item)));
    await turn();
    expect(runner.batches).toEqual([[1, 2, 3]]);
    runner.releaseAll();
    expect(await results).toEqual(["done 1", "done 2", "done 3"]);
  });

  it("holds items while maxInFlight statements run, then sends them together", async () => {
    const runner = recordingRunner();
    const batcher = createStatementBatcher<number, string>({
      run: (items) => runner.run(items),
      maxInFlight: 1,
    });
    const first = batcher.submit(1);
    await turn();
    const later = [2, 3, 4].map((item) => batcher.submit(item));
    await turn();
    expect(runner.batches).toEqual([[1]]);
    runner.releaseAll();
    expect(await first).toBe("done 1");
    // The finished statement frees its slot, then the next one starts on the following turn.
    await turn();
    await turn();
    expect(runner.batches).toEqual([[1], [2, 3, 4]]);
    runner.releaseAll();
    expect(await Promise.all(later)).toEqual(["done 2", "done 3", "done 4"]);
  });

  it("splits at maxBatch items per statement", async () => {
    const runner = recordingRunner();
    const batcher = createStatementBatcher<number, string>({
      run: (items) => runner.run(items),
      maxBatch: 2,
      maxInFlight: 3,
    });
    const results = Promise.all([1, 2, 3, 4, 5].map((item) => batcher.submit(item)));
    await turn();
    expect(runner.batches).toEqual([[1, 2], [3, 4], [5]]);
    runner.releaseAll();
    expect(await results).toHaveLength(5);
  });

  it("rejects every caller of a failed statement, and runs the next batch", async () => {
    let calls = 0;
    const batcher = createStatementBatcher<number, number>({
      async run(items) {
        calls++;
        if (calls === 1) throw new Error("connection lost");
        return items;
      },
    });
    const failed = [1, 2].map((item) => batcher.submit(item));
    for (const result of failed) await expect(result).rejects.toThrow("connection lost");
    expect(await batcher.submit(3)).toBe(3);
  });

  it("refuses a statement that answers for fewer items than it was given", async () => {
    const batcher = createStatementBatcher<number, number>({
      run: async (items) => items.slice(1),
    });
    await expect(Promise.all([batcher.submit(1), batcher.submit(2)])).rejects.toThrow(
      "answered 1 of 2",
    );
  });
});
