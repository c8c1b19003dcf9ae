/**
 * A map with a bound on its entries, least recently used first out: what
 * every cache of xsplice is, so that a long-lived user of the library (the
 * agent, a loop over processes) keeps a fixed amount of memory. Caches live
 * in an explicit `XspliceContext` (`src/core/context.ts`), never in module
 * globals.
 */
export class BoundedCache<K, V> {
  private readonly map = new Map<K, V>();

  /** A cache of at most `max` entries (at least 1). */
  constructor(readonly max: number) {
    if (!(max >= 1)) throw new RangeError(`cache bound ${max} is not >= 1`);
  }

  /** The entry for `key` (now the most recently used), or undefined. */
  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    this.map.delete(key);
    this.map.set(key, v);
    return v;
  }

  /** True when `key` has an entry (without touching its recency). */
  has(key: K): boolean {
    return this.map.has(key);
  }

  /** Set `key`; the least recently used entry goes when the bound is passed. */
  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as K);
  }

  /** The entry for `key`, made by `make` when missing. */
  getOrSet(key: K, make: () => V): V {
    const hit = this.get(key);
    if (hit !== undefined) return hit;
    const v = make();
    this.set(key, v);
    return v;
  }

  /** Number of entries. */
  get size(): number {
    return this.map.size;
  }

  /** Drop every entry. */
  clear(): void {
    this.map.clear();
  }
}
