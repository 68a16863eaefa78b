import { setImmediate as nextTurn } from "node:timers/promises";
import { expect, it } from "vitest";
import { createBatchedLineWriter } from "./batched-line-writer";

it("writes the lines of one event-loop turn as one chunk, in order", async () => {
  const chunks: string[] = [];
  const writer = createBatchedLineWriter((chunk) => chunks.push(chunk));
  writer.write('{"n":1}');
  writer.write('{"n":2}');
  writer.write('{"n":3}');
  expect(chunks).toEqual([]);
  await nextTurn();
  expect(chunks).toEqual(['{"n":1}\n{"n":2}\n{"n":3}\n']);

  writer.write('{"n":4}');
  await nextTurn();
  expect(chunks).toEqual(['{"n":1}\n{"n":2}\n{"n":3}\n', '{"n":4}\n']);
});

it("writes at once when the pending lines reach the limit", () => {
  const chunks: string[] = [];
  const writer = createBatchedLineWriter((chunk) => chunks.push(chunk), { maxPendingChars: 10 });
  writer.write("abcd");
  expect(chunks).toEqual([]);
  writer.write("efgh");
  expect(chunks).toEqual(["abcd\nefgh\n"]);
});

it("flush writes what is pending now and nothing twice", async () => {
  const chunks: string[] = [];
  const writer = createBatchedLineWriter((chunk) => chunks.push(chunk));
  writer.write("last words");
  writer.flush();
  expect(chunks).toEqual(["last words\n"]);
  await nextTurn();
  writer.flush();
  expect(chunks).toEqual(["last words\n"]);
});
