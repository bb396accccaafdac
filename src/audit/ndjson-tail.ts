import pino from 'pino';
import type { Logger } from 'pino';
import { ensureParent } from './ndjson.js';
import { PRIVATE_FILE_MODE } from './spool-layout.js';
import { SpoolReader } from './spool-reader.js';

/** How long close() waits for a slow NDJSON reader before leaving the rest to the next start. */
const STOP_WAIT_MS = 2000;

/**
 * The NDJSON output for SIEMs, written by the shipper's thread from the spool: the lines are the
 * spool's own (already in pino's line format), so the proxy's thread never writes them twice.
 * It has its own cursor (ndjson-cursor.json): a store outage does not hold it back, and after a
 * crash it resumes where it stopped (a line may be written twice, never lost while in the spool).
 * Writes are asynchronous with backpressure: a reader that stops reading (a stuck stdout pipe)
 * stalls only this output, never the delivery to the store on the same thread.
 */
export class NdjsonTail {
  private readonly reader: SpoolReader;
  private readonly dest: ReturnType<typeof pino.destination>;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;

  constructor(
    dir: string,
    private readonly target: string,
    private readonly pollMs: number,
    private readonly logger: Logger,
  ) {
    this.reader = new SpoolReader(
      dir,
      (segment, err) =>
        logger.error({ segment, err: err.message }, 'pgwarden audit: unreadable spool line skipped'),
      { cursorFile: 'ndjson-cursor.json', deleteFinished: false },
    );
    if (target !== 'stdout') ensureParent(target);
    this.dest = pino.destination({
      dest: target === 'stdout' ? 1 : target,
      sync: false,
      mkdir: false,
      // Every agent's SQL text: readable by pgwarden's user only (an existing file keeps its mode).
      mode: PRIVATE_FILE_MODE,
    });
    this.dest.on('error', (err: Error) =>
      logger.error({ err: err.message }, 'pgwarden audit: NDJSON output failed'),
    );
  }

  /**
   * Opens the file again by its name, after what was written has reached the old one: logrotate
   * moved it away (or copied and truncated it). Lines not yet written wait in the spool.
   */
  reopen(): void {
    if (this.target === 'stdout') return;
    try {
      this.dest.reopen();
      this.logger.info(
        { event: 'ndjson_reopened', file: this.target },
        'pgwarden audit: NDJSON file reopened',
      );
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'pgwarden audit: NDJSON file could not be reopened');
    }
  }

  /** The first segment the NDJSON output still needs. */
  position(): string | null {
    return this.reader.position();
  }

  private pause(ms: number, event?: 'drain'): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        if (event) this.dest.off(event, done);
        resolve();
      };
      const t = setTimeout(done, ms);
      if (event) this.dest.once(event, done);
      this.wake = done;
    });
  }

  /** Writes what the spool holds beyond the cursor; true if there was anything. */
  async pump(): Promise<boolean> {
    let any = false;
    while (true) {
      const b = await this.reader.read(5000);
      if (b.count > 0 && !this.dest.write(b.lines.ordered.join('\n') + '\n')) {
        // The reader is slow: wait until it has taken this before reading more.
        let drained = false;
        const onDrain = (): void => {
          drained = true;
        };
        this.dest.once('drain', onDrain);
        while (!drained && !this.stopped) await this.pause(1000, 'drain');
        this.dest.off('drain', onDrain);
      }
      if (b.bytes === 0 && b.finished.length === 0) return any;
      await this.reader.commit(b);
      any = any || b.count > 0;
      if (b.count === 0 || this.stopped) return any;
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
        if (!this.stopped) await this.pause(this.pollMs);
      }
    })();
  }

  /** Writes what is left (within STOP_WAIT_MS), then closes the output. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    const deadline = new Promise<void>((r) => setTimeout(r, STOP_WAIT_MS).unref());
    await Promise.race([this.loop, deadline]);
    this.stopped = false; // one last pass, still bounded by the deadline
    await Promise.race([this.pump().catch(() => false), deadline]);
    this.stopped = true;
    const closed = new Promise<void>((resolve) => this.dest.once('close', () => resolve()));
    this.dest.end();
    await Promise.race([closed, deadline]);
  }
}
