import pino from 'pino';
import type { Logger } from 'pino';
import { SpoolReader } from './spool-reader.js';

/**
 * The NDJSON output for SIEMs, written by the shipper's thread from the spool: the lines are the
 * spool's own (already in pino's line format), so the proxy's thread never writes them twice.
 * It has its own cursor (ndjson-cursor.json): a store outage does not hold it back, and after a
 * crash it resumes where it stopped (a line may be written twice, never lost while in the spool).
 */
export class NdjsonTail {
  private readonly reader: SpoolReader;
  private readonly dest: ReturnType<typeof pino.destination>;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;

  constructor(
    dir: string,
    target: string,
    private readonly pollMs: number,
    private readonly logger: Logger,
  ) {
    this.reader = new SpoolReader(
      dir,
      (segment, err) =>
        logger.error({ segment, err: err.message }, 'pgwarden audit: unreadable spool line skipped'),
      { cursorFile: 'ndjson-cursor.json', deleteFinished: false },
    );
    // Synchronous writes are fine here: this thread has nothing else to do meanwhile.
    this.dest = pino.destination({
      dest: target === 'stdout' ? 1 : target,
      sync: true,
      mkdir: target !== 'stdout',
    });
  }

  /** The first segment the NDJSON output still needs. */
  position(): string | null {
    return this.reader.position();
  }

  /** Writes what the spool holds beyond the cursor; true if there was anything. */
  async pump(): Promise<boolean> {
    let any = false;
    while (true) {
      const b = await this.reader.read(5000);
      if (b.count > 0) this.dest.write(b.lines.ordered.join('\n') + '\n');
      if (b.bytes === 0 && b.finished.length === 0) return any;
      await this.reader.commit(b);
      any = any || b.count > 0;
      if (b.count === 0) return any;
    }
  }

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        try {
          await this.pump();
        } catch (err) {
          this.logger.error(
            { err: (err as Error).message },
            'pgwarden audit: NDJSON output failed; will retry',
          );
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, this.pollMs);
          function done(): void {
            clearTimeout(t);
            resolve();
          }
          this.wake = done;
        });
      }
    })();
  }

  /** Writes everything left, then closes the output. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    await this.pump().catch(() => false);
    this.dest.flushSync();
    this.dest.end();
  }
}
