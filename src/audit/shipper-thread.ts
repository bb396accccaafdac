import { parentPort, workerData } from 'node:worker_threads';
import pg from 'pg';
import pino from 'pino';
import { NdjsonTail } from './ndjson-tail.js';
import { applyRetention } from './retention.js';
import { bytesFrom } from './spool-layout.js';
import { Shipper, type ShipperStats } from './shipper.js';
import type { FromShipper, ShipperWorkerData, ToShipper } from './shipper-protocol.js';
import { ensureDatabase, ensureSchema } from './store-schema.js';
import { setStoreHmacKey } from './store-writer.js';

/**
 * The shipper's thread. Reading the spool and talking to the store never runs on the proxy's
 * event loop, whose every microsecond is a statement's latency.
 */
const port = parentPort;
if (!port) throw new Error('shipper-thread runs only as a worker thread');
const data = workerData as ShipperWorkerData;
const post = (m: FromShipper): void => port.postMessage(m);

// Log lines go to the main thread's logger, so there is one log stream with one configuration.
const logger = pino(
  { level: 'info', base: null },
  {
    write(line: string): void {
      const { level, msg, ...obj } = JSON.parse(line) as { level: number; msg: string } & Record<
        string,
        unknown
      >;
      delete obj.time;
      post({ type: 'log', level: level >= 50 ? 'error' : level >= 40 ? 'warn' : 'info', obj, msg });
    },
  },
);

// A delivery waits on no lock and no statement for long: someone holding the head row's lock in
// the store stalled every record, unnoticed (red team, round 41). A timeout is a failed round:
// counted, logged and retried, with the records kept in the spool.
const pool = new pg.Pool({
  connectionString: data.storeUrl,
  max: 2,
  connectionTimeoutMillis: 5000,
  lock_timeout: 10_000,
  statement_timeout: 60_000,
});
// Idle connections die when the store restarts; the next round reconnects.
pool.on('error', () => {});
setStoreHmacKey(pool, data.hmacKey ?? undefined);
const hmacKey = data.hmacKey ?? undefined;

const ndjson =
  data.ndjson === 'off' ? null : new NdjsonTail(data.ownDir, data.ndjson, data.pollIntervalMs, logger);
ndjson?.start();

let ndjsonDropping = false;
/**
 * Segments the NDJSON output has not written yet are kept, up to the spool's bound: past it the
 * SIEM stream loses lines (logged) rather than the disk filling up behind a reader that is gone.
 */
function ndjsonRetains(tail: NdjsonTail): string | null {
  const pos = tail.position();
  if (pos === null) return null;
  const behind = bytesFrom(data.ownDir, pos);
  if (behind <= data.spoolMaxBytes) {
    ndjsonDropping = false;
    return pos;
  }
  if (!ndjsonDropping) {
    ndjsonDropping = true;
    logger.error(
      { behind },
      'pgwarden audit: NDJSON output too far behind; its oldest spool segments are released',
    );
  }
  return null;
}

let last = '';
const shipper = new Shipper({
  pool,
  prepare: async () => {
    if (data.create) await ensureDatabase(data.create.adminUrl, data.create.database);
    await ensureSchema(pool, { sqlTextIndex: data.sqlTextIndex });
    logger.info('pgwarden audit: store ready');
  },
  ownDir: data.ownDir,
  spoolRoot: data.spoolRoot,
  batchSize: data.batchSize,
  pollIntervalMs: data.pollIntervalMs,
  maxRetryDelayMs: data.maxRetryDelayMs,
  logger,
  ...(ndjson ? { retainFrom: () => ndjsonRetains(ndjson) } : {}),
  onDelivered: (bytes: number) => post({ type: 'delivered', bytes, stats: shipper.stats() }),
  onRound: (stats: ShipperStats) => {
    const s = JSON.stringify(stats);
    if (s !== last) {
      last = s;
      post({ type: 'stats', stats });
    }
  },
});
shipper.start();

let retention: NodeJS.Timeout | undefined;
if (data.retentionDays > 0) {
  const run = (): void => {
    const cutoff = new Date(Date.now() - data.retentionDays * 86_400_000);
    applyRetention(pool, cutoff, hmacKey).then(
      (n) => {
        if (n > 0)
          logger.info({ deleted: n, cutoff: cutoff.toISOString() }, 'pgwarden audit: retention applied');
      },
      (err: Error) => logger.warn({ err: err.message }, 'pgwarden audit: retention failed; will retry'),
    );
  };
  retention = setInterval(run, data.retentionCheckIntervalMs);
  // First run once the store has had time to be created; then on the interval.
  setTimeout(run, Math.min(60_000, data.retentionCheckIntervalMs)).unref();
}

port.on('message', (m: ToShipper) => {
  if (m.type === 'poke') shipper.poke();
  else if (m.type === 'reopen') ndjson?.reopen();
  else if (m.type === 'drain') {
    void shipper.drain(m.timeoutMs, m.giveUpOnFailure).then((ok) => post({ type: 'drained', id: m.id, ok }));
  } else if (m.type === 'stop') {
    if (retention) clearInterval(retention);
    void shipper
      .stop()
      .then(() => ndjson?.stop())
      .then(() => pool.end())
      .finally(() => {
        post({ type: 'stopped' });
        port.close();
      });
  }
});
