/**
 * A bounded map that evicts the least recently used entry. Built on `Map`'s insertion order: a hit
 * moves the entry to the end, so the first key is always the eviction candidate.
 *
 * Bounded by a number of entries, or by their total size (`maxSize` with `sizeOf`, e.g.
 * approximate bytes), or both. The gateway's caches on the request path are sized by memory, not
 * by count: a count that is right for small entries is a cliff for large ones, and the reverse.
 * Our own rather than the `lru-cache` package because the request path hits it several times per
 * request: a hit on the most recent key costs a key comparison (`pnpm bench:gateway`, see
 * `docs/benchmarks.md`), and the plan cache counts shapes its plans share (`sharedSize`), which
 * `lru-cache` cannot. Measured 2026-12-05 (lru-cache 11, 600-character session-token keys, each
 * lookup with a fresh string as from a request header, machine load ~18 on 2 cores so ±3×):
 * same session in a row 113–386 ns per get here against 378–1,619 ns for `lru-cache`; 1,000
 * sessions interleaved 584–2,784 ns against 819–1,178 ns. That is ≤ 1.3 µs of 50–130 µs of gateway
 * CPU per request: not a decisive reason; replacing it is left open (docs/benchmarks.md).
 */
export interface LruCacheLimits<K, V> {
  /** Most entries kept. */
  maxEntries?: number;
  /** Most total size kept, in the units of `sizeOf`. */
  maxSize?: number;
  /** An entry's size, computed once when it is set. Required with `maxSize`. */
  sizeOf?: (value: V, key: K) => number;
  /**
   * Size the entries hold together rather than each its own (structures they share), counted
   * against `maxSize` too; it should shrink as entries leave (`onRemove`).
   */
  sharedSize?: () => number;
  /** Called for every entry that leaves: evicted, replaced, deleted or cleared. */
  onRemove?: (value: V, key: K) => void;
}

/** An entry's value and size, one object for its life (a hit moves it, allocating nothing). */
interface Slot<V> {
  readonly value: V;
  readonly size: number;
}

export class LruCache<K, V> {
  /**
   * Sizes travel with their values: a second map keyed by the same keys would keep a second copy
   * of each key, since a hit re-inserts the entry under the caller's (equal, newer) key.
   */
  readonly #entries = new Map<K, Slot<V>>();
  readonly #sizeOf: ((value: V, key: K) => number) | undefined;
  readonly #onRemove: ((value: V, key: K) => void) | undefined;
  readonly #sharedSize: (() => number) | undefined;
  readonly maxEntries: number;
  readonly maxSize: number;
  #totalSize = 0;
  /**
   * The entry last placed at the end of the order, while it is still there. A hit on it needs
   * neither a map lookup (hashing a long key such as a session token) nor a reorder: the common
   * case of one session's requests in a row costs a key comparison.
   */
  #newest: K | undefined = undefined;
  #newestValue: V | undefined = undefined;
  #hasNewest = false;

  constructor(limits: number | LruCacheLimits<K, V>) {
    const options = typeof limits === "number" ? { maxEntries: limits } : limits;
    this.maxEntries = options.maxEntries ?? Number.POSITIVE_INFINITY;
    this.maxSize = options.maxSize ?? Number.POSITIVE_INFINITY;
    if (
      this.maxEntries !== Number.POSITIVE_INFINITY &&
      (!Number.isInteger(this.maxEntries) || this.maxEntries < 1)
    ) {
      throw new TypeError("LruCache maxEntries must be a positive integer");
    }
    if (options.maxSize !== undefined) {
      if (!(this.maxSize > 0)) throw new TypeError("LruCache maxSize must be positive");
      if (options.sizeOf === undefined) throw new TypeError("LruCache maxSize needs sizeOf");
      this.#sizeOf = options.sizeOf;
      this.#sharedSize = options.sharedSize;
    }
    if (options.maxEntries === undefined && options.maxSize === undefined) {
      throw new TypeError("LruCache needs maxEntries or maxSize");
    }
    this.#onRemove = options.onRemove;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The total of the entries' sizes (0 unless bounded by size). */
  get totalSize(): number {
    return this.#totalSize;
  }

  get(key: K): V | undefined {
    if (this.#hasNewest && this.#newest === key) return this.#newestValue;
    const slot = this.#entries.get(key);
    if (slot === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, slot);
    this.#markNewest(key, slot.value);
    return slot.value;
  }

  /** Whether the key is cached, without touching its place in the order. */
  has(key: K): boolean {
    return this.#entries.has(key);
  }

  /**
   * Sets `key` as the most recent entry and evicts the least recent ones beyond the limits. An
   * entry larger than `maxSize` on its own is not kept: it is removed at once (`onRemove`), and
   * the other entries stay.
   */
  set(key: K, value: V): void {
    this.#remove(key);
    const size = this.#sizeOf === undefined ? 0 : this.#sizeOf(value, key);
    if (size > this.maxSize) {
      this.#onRemove?.(value, key);
      return;
    }
    this.#entries.set(key, { value, size });
    this.#totalSize += size;
    this.#markNewest(key, value);
    while (this.#entries.size > this.maxEntries || this.#overBudget()) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#remove(oldest.value);
    }
  }

  delete(key: K): boolean {
    return this.#remove(key);
  }

  /** Removes every entry for which `predicate` is true; returns how many went. */
  deleteWhere(predicate: (value: V, key: K) => boolean): number {
    let removed = 0;
    for (const [key, { value }] of this.#entries) {
      if (predicate(value, key)) {
        this.#remove(key);
        removed++;
      }
    }
    return removed;
  }

  clear(): void {
    const removed = this.#onRemove === undefined ? [] : [...this.#entries];
    this.#entries.clear();
    this.#totalSize = 0;
    this.#forgetNewest();
    for (const [key, { value }] of removed) this.#onRemove?.(value, key);
  }

  #overBudget(): boolean {
    return this.#totalSize + (this.#sharedSize?.() ?? 0) > this.maxSize;
  }

  #remove(key: K): boolean {
    const slot = this.#entries.get(key);
    if (slot === undefined) return false;
    this.#entries.delete(key);
    if (this.#hasNewest && this.#newest === key) this.#forgetNewest();
    this.#totalSize -= slot.size;
    this.#onRemove?.(slot.value, key);
    return true;
  }

  #markNewest(key: K, value: V): void {
    this.#newest = key;
    this.#newestValue = value;
    this.#hasNewest = true;
  }

  #forgetNewest(): void {
    this.#newest = undefined;
    this.#newestValue = undefined;
    this.#hasNewest = false;
  }
}
