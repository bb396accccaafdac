import { createHash } from 'node:crypto';

/**
 * V8 hashes a string of more than 16,383 characters by its length alone (String::kMaxHashCalcLength),
 * so in a Map every long key of one length shares one bucket chain and each lookup compares with
 * all of them: 1,800 cached texts of 17,500 characters made a miss cost 4.7 ms on the event loop
 * (red team, round 12). Longer keys are stored by their SHA-256 instead.
 */
const MAX_HASHED_KEY_CHARS = 16_383;

/** The key a text is stored under: itself, or for a long one its digest (NUL: no SQL text has one). */
export function storedKey(key: string): string {
  if (key.length <= MAX_HASHED_KEY_CHARS) return key;
  return `\u0000${key.length}:${createHash('sha256').update(key).digest('base64')}`;
}

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
    return this.map.get(storedKey(key))?.value;
  }

  set(text: string, value: V): void {
    const key = storedKey(text);
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
