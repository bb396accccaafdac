/**
 * Who holds the spool's unshipped bytes: runs of (holder, bytes) in the order they were written,
 * consumed from the front as the shipper delivers. A holder is a tenant; null holds what belongs
 * to no one (segment heads, outcomes, what an earlier run left).
 *
 * The runs must add up to exactly the bytes the writer counts as unshipped: deliveries are
 * counted in bytes, and a run charged more than was written would never be paid off.
 */
export class SpoolHolders {
  private readonly runs: { holder: string | null; bytes: number }[] = [];
  private first = 0;
  private readonly held = new Map<string, number>();

  constructor(unowned: number) {
    if (unowned > 0) this.runs.push({ holder: null, bytes: unowned });
  }

  add(holder: string | null, bytes: number): void {
    const last = this.runs[this.runs.length - 1];
    if (last && this.runs.length > this.first && last.holder === holder) last.bytes += bytes;
    else this.runs.push({ holder, bytes });
    if (holder !== null) this.held.set(holder, (this.held.get(holder) ?? 0) + bytes);
  }

  /** The shipper delivered the oldest `bytes` bytes. */
  delivered(bytes: number): void {
    while (bytes > 0 && this.first < this.runs.length) {
      const run = this.runs[this.first] as { holder: string | null; bytes: number };
      const paid = Math.min(bytes, run.bytes);
      run.bytes -= paid;
      bytes -= paid;
      if (run.holder !== null) {
        const left = (this.held.get(run.holder) ?? 0) - paid;
        if (left > 0) this.held.set(run.holder, left);
        else this.held.delete(run.holder);
      }
      if (run.bytes === 0) this.first++;
    }
    // Drop paid runs now and then, not on every delivery.
    if (this.first > 1024 && this.first * 2 > this.runs.length) {
      this.runs.splice(0, this.first);
      this.first = 0;
    }
  }

  /** Unshipped bytes of this holder's entries. */
  of(holder: string): number {
    return this.held.get(holder) ?? 0;
  }
}
