/**
 * A bounded map that evicts the least recently used entry. Built on `Map`'s insertion order: a hit
 * moves the entry to the end, so the first key is always the eviction candidate.
 */
export class LruCache<K, V> {
  readonly #entries = new Map<K, V>();
  /**
   * The key last placed at the end of the order, when it is still there. A hit on it leaves the
   * order as it is: the hottest key (one session's many requests in a row) costs one lookup.
   */
  #newest: K | undefined = undefined;
  #hasNewest = false;

  constructor(readonly maxEntries: number) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new TypeError("LruCache maxEntries must be a positive integer");
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: K): V | undefined {
    const value = this.#entries.get(key);
    if (value === undefined) return undefined;
    if (this.#hasNewest && this.#newest === key) return value;
    this.#entries.delete(key);
    this.#entries.set(key, value);
    this.#newest = key;
    this.#hasNewest = true;
    return value;
  }

  set(key: K, value: V): void {
    this.#entries.delete(key);
    this.#entries.set(key, value);
    this.#newest = key;
    this.#hasNewest = true;
    if (this.#entries.size > this.maxEntries) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
  }

  delete(key: K): boolean {
    if (this.#hasNewest && this.#newest === key) this.#forgetNewest();
    return this.#entries.delete(key);
  }

  #forgetNewest(): void {
    this.#newest = undefined;
    this.#hasNewest = false;
  }

  /** Removes every entry for which `predicate` is true; returns how many went. */
  deleteWhere(predicate: (value: V, key: K) => boolean): number {
    let removed = 0;
    for (const [key, value] of this.#entries) {
      if (predicate(value, key)) {
        this.delete(key);
        removed++;
      }
    }
    return removed;
  }

  clear(): void {
    this.#entries.clear();
    this.#forgetNewest();
  }
}
