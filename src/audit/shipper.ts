import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import type { Logger } from 'pino';
import { appendFile } from 'node:fs/promises';
import { pidAlive, PRIVATE_FILE_MODE } from './spool-layout.js';
import { SpoolReader, type Lines } from './spool-reader.js';
import { deliver } from './store-writer.js';

export interface ShipperOptions {
  readonly pool: pg.Pool;
  /** Creates the database and tables if needed; retried until it succeeds. */
  readonly prepare: () => Promise<void>;
  /** This instance's spool directory. */
  readonly ownDir: string;
  /** The parent of all instance directories, searched for spools of crashed instances. */
  readonly spoolRoot: string;
  readonly batchSize: number;
  readonly pollIntervalMs: number;
  readonly maxRetryDelayMs: number;
  readonly logger: Logger;
  /** Spool bytes of this instance delivered (so the writer's bound frees up). */
  readonly onDelivered: (bytes: number) => void;
  /** The first own segment the NDJSON output still needs (not deleted yet). */
  readonly retainFrom?: () => string | null;
  /** After every round, with fresh stats. */
  readonly onRound?: (stats: ShipperStats) => void;
}

export interface ShipperStats {
  readonly delivered: number;
  readonly storeUp: boolean;
  readonly consecutiveFailures: number;
  readonly lastError: string | null;
  readonly orphanSpools: number;
  /** The last chain position of this instance's own spool committed to the store (0: none yet). */
  readonly ownDeliveredSeq: number;
}

/** The process that owns a spool directory (its owner.json), or undefined: not a spool directory. */
function ownerOf(dir: string): number | undefined {
  try {
    return (JSON.parse(readFileSync(join(dir, 'owner.json'), 'utf8')) as { pid: number }).pid;
  } catch {
    return undefined;
  }
}

/** Whether another process that is alive owns the spool directory. */
function ownerRunning(dir: string): boolean {
  return runningElsewhere(ownerOf(dir));
}

function runningElsewhere(pid: number | undefined): pid is number {
  return pid !== undefined && pid !== process.pid && pidAlive(pid);
}

/** Spool directories whose writer process is gone: their records are delivered by us. */
function findOrphans(root: string, ownDir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  // A directory without an owner file is not a spool directory: not ours to touch.
  return names
    .map((name) => join(root, name))
    .filter((dir) => {
      const pid = dir === ownDir ? undefined : ownerOf(dir);
      return pid !== undefined && !runningElsewhere(pid);
    });
}

/**
 * Delivers spooled entries to the store in batches, in spool order, until stopped. While the
 * store is down it retries with capped exponential back-off; records wait in the spool.
 */
export class Shipper {
  private readonly own: SpoolReader;
  private orphans: SpoolReader[];
  private stopped = false;
  private prepared = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private delivered = 0;
  private failures = 0;
  private lastError: string | null = null;
  private roundsStarted = 0;
  private lastIdleRound = -1;
  private ownDeliveredSeq = 0;

  constructor(private readonly o: ShipperOptions) {
    const bad = (segment: string, err: Error): void =>
      o.logger.error({ segment, err: err.message }, 'pgwarden audit: unreadable spool line skipped');
    this.own = new SpoolReader(o.ownDir, bad, o.retainFrom ? { retainFrom: o.retainFrom } : {});
    this.orphans = findOrphans(o.spoolRoot, o.ownDir).map((d) => new SpoolReader(d, bad, { orphan: true }));
    if (this.orphans.length > 0) {
      o.logger.info(
        { spools: this.orphans.map((r) => r.dir) },
        'pgwarden audit: delivering spools of stopped instances',
      );
    }
  }

  start(): void {
    this.loop = this.run();
  }

  /** Asks for a delivery round now instead of after the poll interval. */
  poke(): void {
    this.wake?.();
  }

  stats(): ShipperStats {
    return {
      delivered: this.delivered,
      storeUp: this.failures === 0 && this.prepared,
      consecutiveFailures: this.failures,
      lastError: this.lastError,
      orphanSpools: this.orphans.length,
      ownDeliveredSeq: this.ownDeliveredSeq,
    };
  }

  /**
   * True once a round found nothing left to deliver; false when the timeout passes (or, if asked,
   * as soon as the store fails).
   * For close() and tests.
   */
  async drain(timeoutMs: number, giveUpOnFailure = false): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    // Only a round that started after this call has seen every write made before it.
    const after = this.roundsStarted;
    while (Date.now() < until) {
      this.poke();
      await new Promise((r) => setTimeout(r, 20));
      if (this.lastIdleRound > after) return true;
      if (giveUpOnFailure && this.failures > 0 && this.roundsStarted > after) return false;
    }
    return false;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.poke();
    await this.loop;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  private async round(): Promise<boolean> {
    if (!this.prepared) {
      await this.o.prepare();
      this.prepared = true;
    }
    let worked = false;
    for (const r of [this.own, ...this.orphans]) {
      // The writer of a spool delivered as a stopped instance's may have started again: its
      // spool is its own again (red team, round 41).
      if (r !== this.own && ownerRunning(r.dir)) {
        this.leave(r, 'pgwarden audit: the instance of a spool being delivered started again; left to it');
        continue;
      }
      const batch = await r.read(this.o.batchSize);
      if (r !== this.own && batch.count === 0 && batch.bytes === 0 && batch.finished.length === 0) {
        // Its last segment stays, with the chain's head, for when its instance starts again (a
        // spool removed whole made it start a new chain at 1 under the same id; round 41).
        this.leave(r, 'pgwarden audit: spool of a stopped instance delivered');
        continue;
      }
      if (batch.count > 0) await this.deliverOrQuarantine(r.dir, batch.lines);
      if (r === this.own && batch.lines.last !== null)
        this.ownDeliveredSeq = (JSON.parse(batch.lines.last) as { chainSeq: number }).chainSeq;
      if (batch.bytes > 0 || batch.finished.length > 0) {
        await r.commit(batch);
        this.delivered += batch.count;
        if (r === this.own) this.o.onDelivered(batch.bytes);
        worked = worked || batch.count > 0 || batch.finished.length > 0;
      }
    }
    return worked;
  }

  private leave(r: SpoolReader, message: string): void {
    this.orphans = this.orphans.filter((o) => o !== r);
    this.o.logger.info({ spool: r.dir }, message);
  }

  /**
   * A line the store cannot take (not JSON, SQLSTATE class 22 or 54) must not hold back every record
   * behind it: the batch is retried line by line and refused lines go to rejected.ndjson beside
   * the spool, with an error in the log. Any other error is an outage: the batch waits.
   */
  private async deliverOrQuarantine(dir: string, lines: Lines): Promise<void> {
    try {
      await deliver(this.o.pool, lines);
      return;
    } catch (err) {
      if (!isDataError(err)) throw err;
    }
    const all = [
      ...lines.decisions.map((l) => ({ l, d: true })),
      ...lines.outcomes.map((l) => ({ l, d: false })),
    ];
    for (const { l, d } of all) {
      try {
        await deliver(this.o.pool, {
          decisions: d ? [l] : [],
          outcomes: d ? [] : [l],
          ordered: [l],
          last: l,
        });
      } catch (err) {
        if (!isDataError(err)) throw err;
        // Holds SQL text like the spool: readable by pgwarden's user only.
        await appendFile(join(dir, 'rejected.ndjson'), l + '\n', { mode: PRIVATE_FILE_MODE });
        this.o.logger.error(
          { dir, sqlstate: (err as { code?: string }).code, err: (err as Error).message },
          'pgwarden audit: store refused a spool line; kept in rejected.ndjson',
        );
      }
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const n = ++this.roundsStarted;
      try {
        const worked = await this.round();
        if (this.failures > 0) {
          this.o.logger.info({ after: this.failures }, 'pgwarden audit: store reachable again');
        }
        this.failures = 0;
        this.lastError = null;
        this.o.onRound?.(this.stats());
        if (!worked) {
          this.lastIdleRound = n;
          await this.sleep(this.o.pollIntervalMs);
        }
      } catch (err) {
        const code = (err as { code?: string }).code;
        // The database or its tables vanished: create them again before the next round.
        if (code === '3D000' || code === '42P01') this.prepared = false;
        this.failures++;
        this.lastError = (err as Error).message;
        this.o.onRound?.(this.stats());
        if (this.failures === 1) {
          this.o.logger.warn(
            { err: this.lastError },
            'pgwarden audit: store unavailable; records wait in the spool',
          );
        }
        await this.sleep(Math.min(this.o.maxRetryDelayMs, 50 * 2 ** Math.min(this.failures, 16)));
      }
    }
  }
}

/**
 * A line that can never be stored, as opposed to an outage: not JSON, SQLSTATE class 22 (data
 * exception) or class 54 (program limit exceeded: a value too large for an index entry, say).
 * Both classes depend on the line's content, so retrying the same line can never succeed.
 * https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export function isDataError(err: unknown): boolean {
  return err instanceof SyntaxError || /^(22|54)/.test(String((err as { code?: string }).code ?? ''));
}
