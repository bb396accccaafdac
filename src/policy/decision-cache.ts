/**
 * A bounded map that forgets its oldest entries first (Map keeps insertion order), bounded both in
 * entries and in bytes: a few KB of SQL can rewrite to tens of KB (a multi-row INSERT into a
 * parent-scoped table gets a guard per row), so a count alone let 10,000 entries hold gigabytes.
 */
export class BoundedCache<V> {
  private readonly map = new Map<string, { value: V; bytes: number }>();
  private held = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxBytes: number,
    /** The bytes an entry holds besides its key. */
    private readonly bytesOf: (value: V) => number,
  ) {}

  get(key: string): V | undefined {
    return this.map.get(key)?.value;
  }

  set(key: string, value: V): void {
    // Strings hold two bytes per character at most; a count of characters is close enough.
    const bytes = key.length + this.bytesOf(value);
    // One entry larger than a sixteenth of the budget would wipe out many others for one statement.
    if (this.maxEntries <= 0 || bytes > this.maxBytes / 16) return;
    const old = this.map.get(key);
    if (old) {
      this.map.delete(key);
      this.held -= old.bytes;
    }
    while (this.map.size > 0 && (this.map.size >= this.maxEntries || this.held + bytes > this.maxBytes)) {
      const oldest = this.map.entries().next().value as [string, { bytes: number }];
      this.map.delete(oldest[0]);
      this.held -= oldest[1].bytes;
    }
    this.map.set(key, { value, bytes });
    this.held += bytes;
  }

  get size(): number {
    return this.map.size;
  }

  /** Characters held by keys and values. */
  get bytes(): number {
    return this.held;
  }
}
