/** What a window left out of the log: logged once the next window starts. */
export interface ThrottleSummary {
  /** Events in the window, logged or not. */
  readonly events: number;
  /** Distinct keys. */
  readonly keys: number;
  /** The keys with most events, most first (at most 10). */
  readonly top: readonly (readonly [string, number])[];
}

/**
 * Throttles a log line that an attacker can trigger at will: the first event of a key (a client
 * address, an error) in a window gets a line, the others are counted and summed up in one line
 * when the next window starts. A tokenless flood of the API wrote a line per request (58 MB in
 * 15 s), and a full decision spool one error line per refused statement.
 */
export class LogThrottle {
  private window = -1;
  private seen = new Map<string, number>();

  constructor(
    private readonly windowMs = 60_000,
    /** Keys remembered per window; beyond it the others are counted under one key. */
    private readonly maxKeys = 10_000,
  ) {}

  /** Whether this event gets its own line, and the summary of the last window if it just ended. */
  note(key: string, now = Date.now()): { log: boolean; summary?: ThrottleSummary } {
    const w = Math.floor(now / this.windowMs);
    let summary: ThrottleSummary | undefined;
    if (w !== this.window) {
      summary = summarize(this.seen);
      this.window = w;
      this.seen = new Map();
    }
    const k = this.seen.has(key) || this.seen.size < this.maxKeys ? key : '(others)';
    const n = this.seen.get(k) ?? 0;
    this.seen.set(k, n + 1);
    return summary ? { log: n === 0, summary } : { log: n === 0 };
  }
}

/** Undefined when every event of the window had its own line. */
function summarize(seen: ReadonlyMap<string, number>): ThrottleSummary | undefined {
  let events = 0;
  for (const n of seen.values()) events += n;
  if (events === seen.size) return undefined;
  const top = [...seen].sort((a, b) => b[1] - a[1]).slice(0, 10);
  return { events, keys: seen.size, top };
}
