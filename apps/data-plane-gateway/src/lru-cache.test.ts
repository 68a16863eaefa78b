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
