import { createReadStream, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseEntryLine } from './canonical.js';
import { linkHash, linkMac } from './chain.js';
import { listSegments } from './spool-layout.js';
import type { InstanceReport, Problem } from './verify.js';

interface ChainState {
  checked: number;
  first: number;
  expected: number | null;
  prev: string | null;
  problem: Problem | null;
  /** A gap just seen; the next line tells a deletion from a line moved further down. */
  gap: { problem: Problem; foundSeq: number } | null;
}

/**
 * Verifies chains in NDJSON lines (a SIEM's copy of the output, or a local spool: the lines are
 * the same) without the store. Lines of each instance must appear in chain order; a gap is a
 * deletion, an intact line that does not follow its predecessor was moved. Lines outside the
 * chain (chainSeq 0, spool full with onFull: ndjson-only) are skipped. Files are read as given, so
 * give a complete, ordered set (rotated files oldest first).
 */
export async function verifyLines(
  files: readonly string[],
  hmacKey: string | undefined,
): Promise<InstanceReport[]> {
  const chains = new Map<string, ChainState>();
  for (const file of files) {
    const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
    let n = 0;
    for await (const line of lines) {
      n++;
      if (line.trim() === '') continue;
      let e;
      try {
        e = parseEntryLine(line);
      } catch {
        continue; // other log lines may share the file (e.g. NDJSON on stdout with the proxy's logs)
      }
      const instance = e.instance;
      let c = chains.get(instance);
      if (!c) {
        c = { checked: 0, first: 0, expected: null, prev: null, problem: null, gap: null };
        chains.set(instance, c);
      }
      if (c.problem) continue;
      if (!('body' in e)) {
        // A segment's head line: where the chain stood when the segment was opened.
        if (c.expected === null) {
          c.expected = e.chainSeq + 1;
          c.prev = e.hash;
          c.first = e.chainSeq + 1;
        }
        continue;
      }
      if (e.seq === 0) continue;
      const where = `${file}:${n}`;
      if (c.gap) {
        const moved = c.expected !== null && e.seq >= c.expected && e.seq < c.gap.foundSeq;
        c.problem = moved
          ? {
              kind: 'reordered',
              chainSeq: e.seq,
              recordId: null,
              message: `${where}: chain seq ${e.seq} comes after ${c.gap.foundSeq}`,
            }
          : c.gap.problem;
        continue;
      }
      const recordId = String(e.value.id ?? e.value.recordId ?? '') || null;
      if (linkHash(e.prev, e.body) !== e.hash) {
        c.problem = {
          kind: 'altered',
          chainSeq: e.seq,
          recordId,
          message: `${where}: the ${e.type} does not match its hash`,
        };
        continue;
      }
      if (c.expected === null) {
        // The first line seen starts the check (earlier lines may have been rotated away).
        c.expected = e.seq;
        c.prev = e.prev;
        c.first = e.seq;
      }
      if (e.seq > c.expected) {
        c.gap = {
          problem: {
            kind: 'deleted',
            chainSeq: c.expected,
            recordId,
            message: `${where}: chain seq ${c.expected}..${e.seq - 1} missing`,
          },
          foundSeq: e.seq,
        };
        continue;
      } else if (e.seq < c.expected) {
        c.problem = {
          kind: 'reordered',
          chainSeq: e.seq,
          recordId,
          message: `${where}: chain seq ${e.seq} after ${c.expected - 1}`,
        };
      } else if (e.prev !== c.prev) {
        c.problem = {
          kind: 'reordered',
          chainSeq: e.seq,
          recordId,
          message: `${where}: intact but does not follow chain seq ${e.seq - 1}`,
        };
      } else if (hmacKey !== undefined && e.mac !== linkMac(hmacKey, e.hash)) {
        c.problem = { kind: 'forged', chainSeq: e.seq, recordId, message: `${where}: wrong HMAC` };
      }
      if (c.problem) continue;
      c.prev = e.hash;
      c.expected = e.seq + 1;
      c.checked++;
    }
  }
  for (const c of chains.values()) if (c.gap && !c.problem) c.problem = c.gap.problem;
  return [...chains.entries()].map(([instance, c]) => ({
    instance,
    ok: c.problem === null,
    checked: c.checked,
    firstSeq: c.first,
    lastSeq: (c.expected ?? 1) - 1,
    problem: c.problem,
  }));
}

/** The files of a spool root or of one instance's spool directory, in chain order. */
export function spoolFiles(dir: string): string[] {
  const own = listSegments(dir).map((f) => join(dir, f));
  if (own.length > 0) return own;
  return readdirSync(dir)
    .map((d) => join(dir, d))
    .filter((d) => statSync(d).isDirectory())
    .flatMap((d) => listSegments(d).map((f) => join(d, f)));
}
