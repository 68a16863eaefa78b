/**
 * A bounded map that evicts the least recently used entry. Built on `Map`'s insertion order: a hit
 * moves the entry to the end, so the first key is always the eviction candidate.
 */
export class LruCache<K, V> {
  readonly #entries = new Map<K, V>();
  /**
   * The entry last placed at the end of the order, while it is still there. A hit on it needs
   * neither a map lookup (hashing a long key such as a session token) nor a reorder: the common
   * case of one session's requests in a row costs a key comparison.
   */
  #newest: K | undefined = undefined;
  #newestValue: V | undefined = undefined;
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
    if (this.#hasNewest && this.#newest === key) return this.#newestValue;
    const value = this.#entries.get(key);
    if (value === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, value);
    this.#markNewest(key, value);
    return value;
  }

  set(key: K, value: V): void {
    this.#entries.delete(key);
    this.#entries.set(key, value);
    this.#markNewest(key, value);
    if (this.#entries.size > this.maxEntries) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
  }

  delete(key: K): boolean {
    if (this.#hasNewest && this.#newest === key) this.#forgetNewest();
    return this.#entries.delete(key);
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
