/**
 * Shares a resource fairly by the time each key has used: `pick` chooses, among the keys that
 * want a turn, the one that has used least since it last wanted nothing. A key that starts wanting
 * starts from the use of the key picked last (`floor`), not from zero, so it cannot claim the time
 * it was away, and never waits behind more than one turn of each other key.
 */
/** Keys remembered at most; beyond, those that want nothing are forgotten. */
const MAX_KEYS = 4096;

export class FairShare<K> {
  private readonly used = new Map<K, number>();
  private floor = 0;

  /** The key to serve next, of `wanting` (ties: the first in iteration order). */
  pick(wanting: Iterable<K>): K | undefined {
    let best: K | undefined;
    let least = Infinity;
    for (const k of wanting) {
      const u = Math.max(this.used.get(k) ?? 0, this.floor);
      if (u < least) [best, least] = [k, u];
    }
    if (best !== undefined) this.floor = least;
    return best;
  }

  /**
   * `key` used `ms` more. Keys that want nothing are forgotten once even with the floor, or when
   * nobody wants anything (fairness matters only while keys compete), or when too many are
   * remembered (a forgotten key only loses the record of its past turns).
   */
  charge(key: K, ms: number, stillWanting: (k: K) => boolean): void {
    this.used.set(key, Math.max(this.used.get(key) ?? 0, this.floor) + ms);
    let anyWanting = false;
    for (const [k, u] of this.used) {
      const wanting = stillWanting(k);
      anyWanting ||= wanting;
      if (!wanting && (u <= this.floor || this.used.size > MAX_KEYS)) this.used.delete(k);
    }
    if (!anyWanting) {
      this.used.clear();
      this.floor = 0;
    }
  }

  /** Keys remembered (for tests: it must not grow with keys that come and go). */
  get size(): number {
    return this.used.size;
  }
}
