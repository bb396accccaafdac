import type { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { startThread } from '../thread.js';
import type { ShipperStats } from './shipper.js';
import type { FromShipper, ShipperWorkerData, ToShipper } from './shipper-protocol.js';

const INITIAL: ShipperStats = {
  delivered: 0,
  storeUp: false,
  consecutiveFailures: 0,
  lastError: null,
  orphanSpools: 0,
  ownDeliveredSeq: 0,
};

/** The main thread's handle on the shipper's worker thread. */
export class ShipperClient {
  private worker!: Worker;
  private latest: ShipperStats = INITIAL;
  private nextId = 1;
  private readonly drains = new Map<number, (ok: boolean) => void>();
  private stopped: Promise<void> | null = null;
  private restarts = 0;

  constructor(
    private readonly data: ShipperWorkerData,
    private readonly logger: Logger,
    private readonly onDelivered: (bytes: number) => void,
  ) {
    this.spawn();
  }

  private spawn(): void {
    const worker = startThread('audit/shipper-thread', { workerData: this.data });
    this.worker = worker;
    // The proxy decides when to exit; a forgotten close() must not keep the process alive.
    worker.unref();
    worker.on('message', (m: FromShipper) => {
      if (m.type === 'delivered') {
        this.latest = m.stats;
        this.onDelivered(m.bytes);
      } else if (m.type === 'stats') this.latest = m.stats;
      else if (m.type === 'drained') {
        this.drains.get(m.id)?.(m.ok);
        this.drains.delete(m.id);
      } else if (m.type === 'log') this.logger[m.level](m.obj, m.msg);
    });
    worker.on('error', (err) =>
      this.logger.error({ err: err.message }, 'pgwarden audit: shipper thread failed'),
    );
    worker.on('exit', () => {
      for (const resolve of this.drains.values()) resolve(false);
      this.drains.clear();
      if (this.stopped) return;
      // Without a shipper the spool only grows until statements are refused: start another one.
      // Its cursors are on disk, so it resumes where this one stopped.
      const delay = Math.min(30_000, 500 * 2 ** Math.min(this.restarts++, 6));
      this.logger.error({ delay }, 'pgwarden audit: shipper thread exited; restarting it');
      setTimeout(() => {
        if (!this.stopped) this.spawn();
      }, delay).unref();
    });
  }

  stats(): ShipperStats {
    return this.latest;
  }

  private send(m: ToShipper): void {
    this.worker.postMessage(m);
  }

  poke(): void {
    this.send({ type: 'poke' });
  }

  /** The NDJSON file is opened again by its name (log rotation). */
  reopenNdjson(): void {
    this.send({ type: 'reopen' });
  }

  drain(timeoutMs: number, giveUpOnFailure = false): Promise<boolean> {
    const id = this.nextId++;
    // While someone waits for the thread, it must keep the process alive (a CLI, a script).
    this.worker.ref();
    return new Promise((resolve) => {
      this.drains.set(id, (ok) => {
        if (this.drains.size <= 1) this.worker.unref();
        resolve(ok);
      });
      this.send({ type: 'drain', id, timeoutMs, giveUpOnFailure });
    });
  }

  stop(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      this.worker.ref();
      this.worker.once('exit', () => resolve());
      this.send({ type: 'stop' });
      // A thread stuck on a dead TCP connection is not waited for forever.
      setTimeout(() => void this.worker.terminate(), 10_000).unref();
    });
    return this.stopped;
  }
}
