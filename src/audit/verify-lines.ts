import { createReadStream, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { entryLine, isWarning, parseEntryLine, type SpoolEntry } from './canonical.js';
import { linkHash, linkMac } from './chain.js';
import type { DecisionRecord } from './record.js';
import { listSegments } from './spool-layout.js';
import type { InstanceReport, Problem } from './verify.js';

interface ChainState {
  checked: number;
  /** Lines outside the chain (chainSeq 0): counted, not verifiable. */
  unchained: number;
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
 * deletion, an intact line that does not follow its predecessor was moved. The hash covers only
 * the body, so each line's outer fields (level, time, msg, instance) must be what canonical.ts
 * writes for that body: a denial relabelled as info would slip past a SIEM's alerting. Lines
 * outside the chain (chainSeq 0, spool full with onFull: ndjson-only) cannot be verified: they are
 * counted (`unchained`) and reported, without failing the check by themselves. Files are read as
 * given, so give a complete, ordered set (rotated files oldest first); a file cut at its end is
 * only detectable against the store's head.
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
        c = { checked: 0, unchained: 0, first: 0, expected: null, prev: null, problem: null, gap: null };
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
      const where = `${file}:${n}`;
      const outer = outerMismatch(line, e);
      if (outer !== null) {
        c.problem = {
          kind: 'altered',
          chainSeq: e.seq,
          recordId: String(e.value.id ?? e.value.recordId ?? '') || null,
          message: `${where}: the line's ${outer} does not match its ${e.type} (the hash covers only the ${e.type})`,
        };
        continue;
      }
      if (e.seq === 0) {
        c.unchained++;
        continue;
      }
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
    unchained: c.unchained,
    firstSeq: c.first,
    lastSeq: (c.expected ?? 1) - 1,
    problem: c.problem,
  }));
}

const HEADER_KEYS = ['level', 'time', 'msg', 'instance', 'chainSeq', 'prev', 'hash', 'mac'];

/**
 * Which outer field of an entry line differs from what canonical.ts's entryLine writes for its body
 * (null when none): pino's level from the record's verdict and kind (outcomes are info), the body's
 * time, the entry type as msg, the record's instance, and no other fields.
 */
function outerMismatch(line: string, e: SpoolEntry): string | null {
  const v = JSON.parse(line) as Record<string, unknown>;
  const body = e.value as Record<string, unknown> | null;
  if (body === null || typeof body !== 'object') return 'body';
  const warn = e.type === 'decision' && isWarning(body as unknown as DecisionRecord);
  if (v.level !== (warn ? 40 : 30)) return 'level';
  if (v.time !== body.time) return 'time';
  if (v.msg !== e.type) return 'msg';
  if (typeof v.instance !== 'string' || (e.type === 'decision' && v.instance !== body.instanceId))
    return 'instance';
  const keys = [...HEADER_KEYS, e.type === 'decision' ? 'record' : 'outcome'];
  if (Object.keys(v).length !== keys.length || keys.some((k) => !(k in v))) return 'set of fields';
  // Parsed values hide what a reader that keeps the first of two equal keys, or reads escapes
  // differently, would see: the line must be exactly the one pgwarden writes for this entry.
  const link = { seq: e.seq, prev: e.prev, hash: e.hash, mac: e.mac };
  if (entryLine(e.type, e.instance, String(v.time), warn, link, e.body) !== `${line.replace(/\n$/, '')}\n`)
    return 'bytes';
  return null;
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
