/** What a window of refusals left out of the log: logged once the next window starts. */
export interface RefusalSummary {
  readonly refused: number;
  readonly addresses: number;
  /** The addresses with most refusals, most first (at most 10). */
  readonly top: readonly (readonly [string, number])[];
}

/**
 * Throttles the log line of refused API requests: the first refusal from a client address in a
 * window gets a line, the others are counted and summed up in one line when the next window
 * starts. A tokenless flood wrote a line per request (58 MB in 15 s) to the operators' log.
 */
export class RefusalLog {
  private window = -1;
  private seen = new Map<string, number>();

  constructor(
    private readonly windowMs = 60_000,
    /** Addresses remembered per window; beyond it the others are counted under one key. */
    private readonly maxAddresses = 10_000,
  ) {}

  /** Whether this refusal gets its own line, and the summary of the last window if it just ended. */
  note(address: string, now = Date.now()): { log: boolean; summary?: RefusalSummary } {
    const w = Math.floor(now / this.windowMs);
    let summary: RefusalSummary | undefined;
    if (w !== this.window) {
      summary = summarize(this.seen);
      this.window = w;
      this.seen = new Map();
    }
    const key = this.seen.has(address) || this.seen.size < this.maxAddresses ? address : '(others)';
    const n = this.seen.get(key) ?? 0;
    this.seen.set(key, n + 1);
    return summary ? { log: n === 0, summary } : { log: n === 0 };
  }
}

/** Undefined when every refusal of the window had its own line. */
function summarize(seen: ReadonlyMap<string, number>): RefusalSummary | undefined {
  let refused = 0;
  for (const n of seen.values()) refused += n;
  if (refused === seen.size) return undefined;
  const top = [...seen].sort((a, b) => b[1] - a[1]).slice(0, 10);
  return { refused, addresses: seen.size, top };
}
