import {
  closeSync,
  fdatasync,
  fdatasyncSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readFileSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { Chain, GENESIS, type Link } from './chain.js';
import { SpoolHolders } from './spool-holders.js';
import { entryLine, headLine, parseEntryLine, type EntryType } from './canonical.js';
import {
  lastCompleteLine,
  listSegments,
  makePrivateDir,
  pidAlive,
  PRIVATE_FILE_MODE,
  segmentName,
  unshippedBytes,
} from './spool-layout.js';

export interface SpoolWriterOptions {
  readonly dir: string;
  readonly instanceId: string;
  readonly segmentBytes: number;
  readonly maxBytes: number;
  readonly fsyncIntervalMs: number;
  readonly hmacKey: string | undefined;
  readonly onFsyncError: (err: Error) => void;
  /** Where the chain stands when the spool holds nothing of it (the store's head: store-head.ts). */
  readonly startHead?: { seq: number; hash: string } | undefined;
}

/** Buffered outcomes are written at the latest after this long, or once this many bytes wait. */
const PENDING_FLUSH_MS = 20;
const PENDING_FLUSH_BYTES = 64 * 1024;

/** Spool directories open in this process, so two writers never share one. */
const openDirs = new Set<string>();

/**
 * The crash-safe half of the decision log. A decision is durable once its line is in the kernel
 * (writeSync), which survives the death of this process; fdatasync on a timer bounds what a
 * machine crash can take.
 *
 * Group commit: decisions appended during one turn of the event loop (every client whose bytes
 * arrived together) are written with one writeSync at the end of that turn (setImmediate), and
 * `onDurable` callbacks run after it; sessions hold their statements until then. A write per
 * statement was the largest single cost on the record's path. Outcomes are not
 * on a statement's critical path: they wait for the next write, or PENDING_FLUSH_MS at most.
 */
export class SpoolWriter {
  private readonly chain: Chain;
  private fd = -1;
  private segmentSize = 0;
  private pending = '';
  private pendingBytes = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  /** Set while a write at the end of this event-loop turn is scheduled. */
  private immediate: NodeJS.Immediate | undefined;
  private waiting: ((err: Error | undefined) => void)[] = [];
  /** The last link actually written: where a new segment starts, whatever is still pending. */
  private written: { seq: number; hash: string };
  private dirty = false;
  private syncing = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Bytes in the spool not yet delivered (see `delivered`). */
  unshipped: number;
  appended = 0;
  private readonly holders: SpoolHolders;

  private constructor(
    private readonly opts: SpoolWriterOptions,
    head: { seq: number; hash: string },
  ) {
    this.chain = new Chain(head, opts.hmacKey);
    this.written = head;
    this.unshipped = unshippedBytes(opts.dir);
    this.holders = new SpoolHolders(this.unshipped);
    this.openSegment();
    if (opts.fsyncIntervalMs > 0) {
      this.timer = setInterval(() => this.syncSoon(), opts.fsyncIntervalMs);
      this.timer.unref();
    }
  }

  static open(opts: SpoolWriterOptions): SpoolWriter {
    if (openDirs.has(opts.dir)) throw new Error(`spool ${opts.dir} is already open in this process`);
    makePrivateDir(opts.dir, true);
    const owner = join(opts.dir, 'owner.json');
    try {
      const o = JSON.parse(readFileSync(owner, 'utf8')) as { pid: number };
      if (o.pid !== process.pid && pidAlive(o.pid)) {
        throw new Error(`spool ${opts.dir} is in use by pid ${o.pid}`);
      }
    } catch (err) {
      if ((err as Error).message.startsWith('spool ')) throw err;
    }
    writeOwner(opts.dir);
    const recovered = recoverHead(opts.dir);
    const head = recovered.seq === 0 && opts.startHead ? opts.startHead : recovered;
    const w = new SpoolWriter(opts, head);
    openDirs.add(opts.dir);
    return w;
  }

  head(): { seq: number; hash: string } {
    return this.chain.head();
  }

  full(extraBytes: number): boolean {
    return this.unshipped + this.pendingBytes + extraBytes > this.opts.maxBytes;
  }

  /** Unshipped bytes of the entries appended for `holder` (written or pending). */
  heldBy(holder: string): number {
    return this.holders.of(holder);
  }

  /** The shipper delivered the oldest `bytes` bytes of the spool to the store. */
  delivered(bytes: number): void {
    this.unshipped = Math.max(0, this.unshipped - bytes);
    this.holders.delivered(bytes);
  }

  /**
   * Queues a decision for the write at the end of this event-loop turn; its place in the chain is
   * fixed now. Whoever must not act before it is durable waits with `onDurable`. Its bytes are
   * held by `holder` until delivered.
   */
  append(type: EntryType, time: string, warn: boolean, body: string, holder: string | null = null): Link {
    const link = this.chain.peek(body);
    const line = entryLine(type, this.opts.instanceId, time, warn, link, body);
    this.chain.commit(link);
    this.pending += line;
    this.pendingBytes += line.length;
    this.holders.add(holder, Buffer.byteLength(line));
    this.flushAtEndOfTurn();
    return link;
  }

  private flushAtEndOfTurn(): void {
    this.immediate ??= setImmediate(() => {
      this.immediate = undefined;
      this.flush();
    });
  }

  /**
   * Calls `done` once everything appended so far is in the kernel, or with the error that kept it
   * out (the entries stay queued and go with the next write that succeeds).
   */
  onDurable(done: (err: Error | undefined) => void): void {
    if (this.pending === '') done(undefined);
    else this.waiting.push(done);
  }

  /** Queues an entry for the next write; its place in the chain is fixed now. */
  appendLater(type: EntryType, time: string, body: string, holder: string | null = null): Link {
    const link = this.chain.peek(body);
    this.chain.commit(link);
    const line = entryLine(type, this.opts.instanceId, time, false, link, body);
    this.pending += line;
    // Characters, not bytes: close enough for the bound and cheaper; writes count exact bytes.
    this.pendingBytes += line.length;
    this.holders.add(holder, Buffer.byteLength(line));
    // Under load the next decision carries them; when idle a short timer does. Either way no
    // extra write per statement (each write is a syscall on the statement's thread).
    if (this.pendingBytes >= PENDING_FLUSH_BYTES) this.flushAtEndOfTurn();
    else if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        this.flush();
      }, PENDING_FLUSH_MS);
      this.flushTimer.unref();
    }
    return link;
  }

  /** Writes queued entries now, then tells whoever waits for them. */
  flush(): void {
    if (this.pending === '' || this.closed) {
      if (this.waiting.length > 0) this.release(this.closed ? new Error('the spool is closed') : undefined);
      return;
    }
    try {
      this.write(this.pending);
      if (this.segmentRemoved()) this.rewriteInNewSegment(this.pending);
    } catch (err) {
      // The entries stay queued, in chain order, for the next write; the statements that waited
      // for them are not run.
      this.opts.onFsyncError(err as Error);
      this.release(err as Error);
      return;
    }
    this.pending = '';
    this.pendingBytes = 0;
    this.written = this.chain.head();
    this.afterWrite();
    this.release(undefined);
  }

  private release(err: Error | undefined): void {
    const waiting = this.waiting;
    if (waiting.length === 0) return;
    this.waiting = [];
    for (const done of waiting) done(err);
  }

  private write(text: string): void {
    if (this.fd < 0) this.openSegment();
    let written: number;
    try {
      // A string write skips a Buffer copy; a short write (rare, e.g. disk nearly full) finishes below.
      written = writeSync(this.fd, text);
      const total = Buffer.byteLength(text);
      if (written < total) {
        const buf = Buffer.from(text, 'utf8');
        while (written < total) written += writeSync(this.fd, buf, written, total - written);
      }
    } catch (err) {
      // Cut the torn line off so the segment stays a sequence of whole lines, then start afresh.
      try {
        ftruncateSync(this.fd, this.segmentSize);
      } catch {
        // The next segment starts clean either way; the reader ignores a torn tail.
      }
      this.closeSegment();
      throw err;
    }
    this.segmentSize += written;
    this.unshipped += written;
    this.appended += written;
    if (this.opts.fsyncIntervalMs === 0) fdatasyncSync(this.fd);
    else this.dirty = true;
  }

  /**
   * Whether the segment written to is no longer in the spool directory (removed by hand, or with
   * the directory): what went to it would never be delivered, while its statements ran.
   */
  private segmentRemoved(): boolean {
    return this.fd >= 0 && fstatSync(this.fd).nlink === 0;
  }

  /** The text just written to a removed segment, written again to a new one (its directory too). */
  private rewriteInNewSegment(text: string): void {
    const lost = Buffer.byteLength(text);
    this.unshipped -= lost;
    this.appended -= lost;
    this.opts.onFsyncError(
      new Error('the spool segment being written was removed; the log goes on in a new segment'),
    );
    this.closeSegment();
    makePrivateDir(this.opts.dir, true);
    writeOwner(this.opts.dir);
    this.openSegment();
    this.write(text);
  }

  private afterWrite(): void {
    if (this.segmentSize >= this.opts.segmentBytes) this.rotate();
  }

  private openSegment(): void {
    const head = this.written;
    const path = join(this.opts.dir, segmentName(head.seq + 1));
    this.fd = openSync(path, 'a', PRIVATE_FILE_MODE);
    const h = headLine(this.opts.instanceId, head);
    writeSync(this.fd, h);
    this.segmentSize = Buffer.byteLength(h);
    this.unshipped += this.segmentSize;
    this.holders.add(null, this.segmentSize);
    // The new file's directory entry must survive a crash too, or the chain's head is lost.
    const dirFd = openSync(this.opts.dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  }

  private closeSegment(): void {
    if (this.fd < 0) return;
    try {
      fdatasyncSync(this.fd);
    } catch {
      // Closing anyway; a failed fsync on a dying segment is reported by the write that failed.
    }
    closeSync(this.fd);
    this.fd = -1;
  }

  private rotate(): void {
    this.closeSegment();
    this.openSegment();
  }

  private syncSoon(): void {
    if (!this.dirty || this.syncing || this.fd < 0) return;
    this.dirty = false;
    this.syncing = true;
    fdatasync(this.fd, (err) => {
      this.syncing = false;
      // EBADF: the segment was rotated or closed meanwhile, and closing synced it already.
      if (err && err.code !== 'EBADF') this.opts.onFsyncError(err);
    });
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.release(new Error('the spool is closed'));
    if (this.timer) clearInterval(this.timer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.immediate) clearImmediate(this.immediate);
    this.closeSegment();
    openDirs.delete(this.opts.dir);
  }
}

/** Marks the spool directory as this process's: other instances deliver it only once it is gone. */
function writeOwner(dir: string): void {
  writeFileSync(
    join(dir, 'owner.json'),
    JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() }),
    { mode: PRIVATE_FILE_MODE },
  );
}

/**
 * The chain's head from the last segment's last whole line. A torn tail (machine crash before
 * fsync) is truncated, so the next write starts on a line boundary.
 */
export function recoverHead(dir: string): { seq: number; hash: string } {
  const segs = listSegments(dir);
  for (let i = segs.length - 1; i >= 0; i--) {
    const path = join(dir, segs[i] as string);
    const { line, validLength } = lastCompleteLine(path);
    const fd = openSync(path, 'r+');
    try {
      ftruncateSync(fd, validLength);
    } finally {
      closeSync(fd);
    }
    if (line === null) continue;
    const e = parseEntryLine(line);
    return 'body' in e ? { seq: e.seq, hash: e.hash } : { seq: e.chainSeq, hash: e.hash };
  }
  return { seq: 0, hash: GENESIS };
}
