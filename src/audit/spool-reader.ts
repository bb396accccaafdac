import { open, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { listSegments, PRIVATE_FILE_MODE, readCursor, type Cursor } from './spool-layout.js';

/** Raw spool lines sorted by type; the store parses them (the shipper never JSON-parses a record). */
export interface Lines {
  readonly decisions: string[];
  readonly outcomes: string[];
  /** Every entry line in spool order (the NDJSON output wants them as written). */
  readonly ordered: string[];
  /** The last entry line, for the chain head. */
  last: string | null;
}

export interface SpoolReaderOptions {
  /** The writer of this directory is gone (a crashed instance): its last segment is final too. */
  readonly orphan?: boolean;
  /** Several readers (store, NDJSON) keep their own cursors in one directory. */
  readonly cursorFile?: string;
  /** Whether this reader deletes segments it has finished (only the store's reader does). */
  readonly deleteFinished?: boolean;
  /** The first segment another reader still needs; it and later ones are not reported finished. */
  readonly retainFrom?: () => string | null;
}

export interface Batch {
  readonly lines: Lines;
  readonly count: number;
  /** Where the next read starts once this batch is delivered. */
  readonly next: Cursor;
  /** Spool bytes this batch covers (head lines and skipped lines included). */
  readonly bytes: number;
  /** Segments wholly before `next`, safe to delete once the batch is delivered. */
  readonly finished: string[];
}

const CHUNK = 1 << 20;

/**
 * A batch's text, at most (one line always goes): 700 records of 128 KiB each made a COPY text
 * past V8's longest string, and every later record waited behind them (red team, round 41).
 */
const MAX_BATCH_CHARS = 16 * 1024 * 1024;
const D = 'd'.charCodeAt(0);
const O = 'o'.charCodeAt(0);
const H = 'h'.charCodeAt(0);

function count(l: Lines): number {
  return l.decisions.length + l.outcomes.length;
}

/**
 * Reads a spool directory from its delivery cursor. It never reads past the last newline, so it
 * can run while the writer appends. A segment is finished when a later segment existed before it
 * was read to its end: the writer (same thread) only opens a new segment after the last write to
 * the old one.
 */
export class SpoolReader {
  private cursor: Cursor | null;
  private readonly cursorFile: string;
  /**
   * One read buffer for the reader's life: a fresh zero-filled MiB per read was most of what the
   * shipper thread cost, idle (ten polls a second) and under load. Nothing keeps a view of it
   * across reads: lines are decoded to strings and a partial line is copied out. Callers await
   * each read before the next (the shipper's rounds, the NDJSON tail's loop).
   */
  private chunk: Buffer | undefined;

  constructor(
    readonly dir: string,
    private readonly onBadLine: (segment: string, err: Error) => void,
    private readonly opts: SpoolReaderOptions = {},
  ) {
    this.cursorFile = opts.cursorFile ?? 'cursor.json';
    this.cursor = readCursor(dir, this.cursorFile);
  }

  /** The segment this reader is in (null before its first read). */
  position(): string | null {
    return this.cursor?.segment ?? listSegments(this.dir)[0] ?? null;
  }

  async read(maxEntries: number): Promise<Batch> {
    const lines: Lines = { decisions: [], outcomes: [], ordered: [], last: null };
    const finished: string[] = [];
    let bytes = 0;
    const segs = listSegments(this.dir);
    let cur: Cursor = this.cursor ?? { segment: segs[0] ?? '', offset: 0 };
    const keep = this.opts.retainFrom?.() ?? null;
    const finish = (seg: string): void => {
      if (keep === null || seg < keep) finished.push(seg);
    };
    const budget = { chars: MAX_BATCH_CHARS };
    for (let i = 0; i < segs.length && count(lines) < maxEntries && budget.chars > 0; i++) {
      const seg = segs[i] as string;
      if (seg < cur.segment) {
        finish(seg); // left behind by a crash between delivery and deletion, or kept for NDJSON
        continue;
      }
      if (seg > cur.segment) cur = { segment: seg, offset: 0 };
      const sealed = this.opts.orphan === true || i < segs.length - 1;
      const r = await this.readSegment(seg, cur.offset, maxEntries - count(lines), lines, budget);
      bytes += r.consumed;
      cur = { segment: seg, offset: cur.offset + r.consumed };
      if (!(sealed && r.atEnd)) break;
      // A stopped instance's last segment is kept: its last line is the chain's head when that
      // instance starts again (recoverHead).
      if (i < segs.length - 1) finish(seg);
    }
    return { lines, count: count(lines), next: cur, bytes, finished };
  }

  private async readSegment(
    seg: string,
    offset: number,
    max: number,
    out: Lines,
    budget: { chars: number },
  ): Promise<{ consumed: number; atEnd: boolean }> {
    const fh = await open(join(this.dir, seg), 'r');
    try {
      let consumed = 0;
      let carry = Buffer.alloc(0);
      let count = 0;
      const buf = (this.chunk ??= Buffer.allocUnsafe(CHUNK));
      while (count < max && budget.chars > 0) {
        const { bytesRead } = await fh.read(buf, 0, CHUNK, offset + consumed + carry.length);
        if (bytesRead === 0) return { consumed, atEnd: true };
        const read = buf.subarray(0, bytesRead);
        let data = carry.length === 0 ? read : Buffer.concat([carry, read]);
        let start = 0;
        while (count < max && budget.chars > 0) {
          const nl = data.indexOf(0x0a, start);
          if (nl < 0) break;
          const line = data.toString('utf8', start, nl);
          start = nl + 1;
          // The header is ours and holds no free text before "msg", so its first character decides.
          const m = line.indexOf('"msg":"');
          const kind = m < 0 ? 0 : line.charCodeAt(m + 7);
          if (kind === H) continue;
          if (kind === D) out.decisions.push(line);
          else if (kind === O) out.outcomes.push(line);
          else {
            this.onBadLine(seg, new Error('not a spool line'));
            continue;
          }
          out.ordered.push(line);
          out.last = line;
          budget.chars -= line.length;
          count++;
        }
        consumed += start;
        data = data.subarray(start);
        carry = Buffer.from(data);
      }
      return { consumed, atEnd: false };
    } finally {
      await fh.close();
    }
  }

  /** Records delivery: the cursor moves first, then finished segments go. */
  async commit(batch: Batch): Promise<void> {
    this.cursor = batch.next;
    const tmp = join(this.dir, `${this.cursorFile}.tmp`);
    await writeFile(tmp, JSON.stringify(batch.next), { mode: PRIVATE_FILE_MODE });
    await rename(tmp, join(this.dir, this.cursorFile));
    if (this.opts.deleteFinished === false) return;
    for (const seg of batch.finished) await unlink(join(this.dir, seg)).catch(() => {});
  }
}
