import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The spool on disk: `<dir>/<instance>/seg-<first chain seq>.ndjson` segments written in order,
 * `cursor.json` (how far the shipper has delivered) and `owner.json` (the pid writing it).
 * Segment names sort in chain order, so the last one always holds the chain's head.
 */
/**
 * Spool segments, cursors, rejected lines and the NDJSON file hold every agent's SQL text: only
 * pgwarden's own user may read them, whatever the umask.
 */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Creates `dir` (and missing parents) with mode 0700. `chmod` too when `own` is set: the directory
 * is pgwarden's alone (an instance's spool), and one made by an older version may be 0755.
 */
export function makePrivateDir(dir: string, own = false): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (own) chmodSync(dir, PRIVATE_DIR_MODE);
}

/** The directory of an output file, created 0700 when missing (an existing one is left as it is). */
export function makeParentDir(file: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: PRIVATE_DIR_MODE });
}

export const SEGMENT_RE = /^seg-(\d{16})\.ndjson$/;

export function instanceDirName(instanceId: string): string {
  return instanceId.replace(/[^A-Za-z0-9._-]/g, '_');
}

export function segmentName(firstSeq: number): string {
  return `seg-${String(firstSeq).padStart(16, '0')}.ndjson`;
}

export function listSegments(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => SEGMENT_RE.test(f))
    .sort();
}

export interface Cursor {
  readonly segment: string;
  readonly offset: number;
}

export function readCursor(dir: string, file = 'cursor.json'): Cursor | null {
  try {
    const c = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Cursor;
    return typeof c.segment === 'string' && Number.isInteger(c.offset) ? c : null;
  } catch {
    return null;
  }
}

/** Bytes written to the spool and not yet delivered to the store. */
export function unshippedBytes(dir: string): number {
  const cursor = readCursor(dir);
  let total = 0;
  for (const seg of listSegments(dir)) {
    if (cursor && seg < cursor.segment) continue;
    const size = statSync(join(dir, seg)).size;
    total += cursor && seg === cursor.segment ? Math.max(0, size - cursor.offset) : size;
  }
  return total;
}

/**
 * The last complete line of a segment, and the length up to its end. A line without its newline
 * can only be a write cut short by a machine crash before fsync: it was never acknowledged.
 * Segments are bounded (segmentBytes plus one record), so reading one whole at start-up is fine.
 */
export function lastCompleteLine(path: string): { line: string | null; validLength: number } {
  const buf = readFileSync(path);
  const end = buf.lastIndexOf(0x0a);
  if (end < 0) return { line: null, validLength: 0 };
  const start = end === 0 ? 0 : buf.lastIndexOf(0x0a, end - 1) + 1;
  return { line: buf.subarray(start, end).toString('utf8'), validLength: end + 1 };
}

/** Bytes in the segments from `segment` on: how far behind a reader at that segment is, at most. */
export function bytesFrom(dir: string, segment: string): number {
  let total = 0;
  for (const seg of listSegments(dir)) {
    if (seg < segment) continue;
    try {
      total += statSync(join(dir, seg)).size;
    } catch {
      // Deleted meanwhile.
    }
  }
  return total;
}

/** Whether the process that owns a spool (owner.json) still runs; EPERM means it does, as another user. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
