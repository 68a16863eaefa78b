import { expect, it } from "vitest";
import { LruCache } from "./lru-cache";

function keys(cache: LruCache<string, number>, candidates: readonly string[]): string[] {
  return candidates.filter((key) => cache.get(key) !== undefined);
}

it("evicts the least recently used entry, a hit making an entry the most recent", () => {
  const cache = new LruCache<string, number>(2);
  cache.set("a", 1);
  cache.set("b", 2);
  expect(cache.get("b")).toBe(2); // already the most recent
  expect(cache.get("a")).toBe(1); // now the most recent: b is next to go
  cache.set("c", 3);
  expect(cache.get("b")).toBeUndefined();
  expect(cache.get("a")).toBe(1);
  expect(cache.get("c")).toBe(3);
});

it("keeps the order exact when the most recent entry is hit again and again", () => {
  const cache = new LruCache<string, number>(3);
  cache.set("a", 1);
  cache.set("b", 2);
  cache.set("c", 3);
  for (let i = 0; i < 5; i++) cache.get("c");
  cache.get("a"); // order: b, c, a
  cache.set("d", 4); // evicts b
  expect(keys(cache, ["a", "b", "c", "d"])).toEqual(["a", "c", "d"]);
});

it("forgets the most recent entry when it is deleted, cleared or removed by predicate", () => {
  const cache = new LruCache<string, number>(2);
  cache.set("a", 1);
  cache.set("b", 2);
  cache.delete("b");
  cache.set("b", 2); // order: a, b
  cache.get("a"); // order: b, a
  cache.set("c", 3); // evicts b
  expect(cache.get("b")).toBeUndefined();

  cache.clear();
  expect(cache.size).toBe(0);
  cache.set("x", 1);
  cache.set("y", 2);
  expect(cache.deleteWhere((value) => value === 2)).toBe(1);
  cache.set("z", 3);
  expect(cache.get("x")).toBe(1);
  expect(cache.get("z")).toBe(3);
});

it("answers the latest value of the most recent key", () => {
  const cache = new LruCache<string, number>(2);
  cache.set("a", 1);
  expect(cache.get("a")).toBe(1);
  cache.set("a", 2);
  expect(cache.get("a")).toBe(2);
  cache.delete("a");
  expect(cache.get("a")).toBeUndefined();
});

it("bounds the total size, evicting the least recent entries until it fits", () => {
  const removed: string[] = [];
  const cache = new LruCache<string, string>({
    maxSize: 10,
    sizeOf: (value) => value.length,
    onRemove: (_value, key) => removed.push(key),
  });
  cache.set("a", "xxxx");
  cache.set("b", "xxxx");
  cache.get("a"); // order: b, a
  cache.set("c", "xxxx"); // 12 > 10: b goes
  expect(removed).toEqual(["b"]);
  expect(cache.totalSize).toBe(8);
  cache.set("d", "x".repeat(9)); // a and c go
  expect(removed).toEqual(["b", "a", "c"]);
  expect(cache.totalSize).toBe(9);
  expect(cache.get("d")).toBe("x".repeat(9));
});

it("does not keep an entry larger than the whole budget, and counts replacements once", () => {
  const removed: string[] = [];
  const cache = new LruCache<string, string>({
    maxSize: 10,
    sizeOf: (value) => value.length,
    onRemove: (value) => removed.push(value),
  });
  cache.set("a", "xx");
  cache.set("a", "yyy");
  expect(cache.totalSize).toBe(3);
  expect(removed).toEqual(["xx"]);
  cache.set("big", "z".repeat(11));
  expect(cache.get("big")).toBeUndefined();
  expect(cache.get("a")).toBe("yyy");
  expect(cache.totalSize).toBe(3);
  expect(removed).toEqual(["xx", "z".repeat(11)]);
});

it("reports entries that leave by delete, predicate and clear", () => {
  const removed: number[] = [];
  const cache = new LruCache<string, number>({
    maxEntries: 10,
    onRemove: (value) => removed.push(value),
  });
  for (const [key, value] of [
    ["a", 1],
    ["b", 2],
    ["c", 3],
    ["d", 4],
  ] as const)
    cache.set(key, value);
  cache.delete("a");
  cache.deleteWhere((value) => value === 2);
  cache.clear();
  expect(removed).toEqual([1, 2, 3, 4]);
  expect(cache.delete("a")).toBe(false);
});
