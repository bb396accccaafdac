import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditCommand } from '../cli/audit.js';
import { auditConfigSchema } from './config.js';
import { startDecisionLog } from './decision-log.js';
import { sampleOutcome, sampleRecord } from './sample-records.js';
import { spoolFiles, verifyLines } from './verify-lines.js';

const DOWN = 'postgres://u:p@127.0.0.1:1/none';
const logger = pino({ level: 'silent' });
let dir: string;
let ndjson: string;
let lines: string[];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pgw-vl-'));
  ndjson = join(dir, 'decisions.ndjson');
  // Durable with the store down: the spool keeps everything and the NDJSON output mirrors it.
  const cfg = auditConfigSchema.parse({
    ndjson,
    store: { url: DOWN },
    spool: { dir: join(dir, 'spool'), segmentBytes: 8192 },
  });
  const log = await startDecisionLog(cfg, { instanceId: 'vl', upstreamUrl: DOWN, logger });
  for (let i = 0; i < 40; i++) {
    const r = sampleRecord({ instanceId: 'vl', sessionId: 's', seq: i });
    log.decide(r);
    log.complete(sampleOutcome(r));
    // One statement per event-loop turn, so the spool is written (and rotated) as it goes.
    await new Promise((done) => setImmediate(done));
  }
  await log.close();
  lines = readFileSync(ndjson, 'utf8').trim().split('\n');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function check(
  edit: (ls: string[]) => string[],
): Promise<Awaited<ReturnType<typeof verifyLines>>[number]> {
  const f = join(dir, `edited-${Math.random()}.ndjson`);
  writeFileSync(f, edit([...lines]).join('\n') + '\n');
  return (await verifyLines([f], undefined))[0] as Awaited<ReturnType<typeof verifyLines>>[number];
}

describe('verifying NDJSON lines and spools without the store', () => {
  it('accepts the intact output and the spool segments', async () => {
    expect(lines).toHaveLength(80);
    expect(await verifyLines([ndjson], undefined)).toMatchObject([{ instance: 'vl', ok: true, checked: 80 }]);
    const segs = spoolFiles(join(dir, 'spool'));
    expect(segs.length).toBeGreaterThan(2);
    expect(await verifyLines(segs, undefined)).toMatchObject([{ ok: true, checked: 80 }]);
  });

  it('reports an edited, a deleted and a reordered line', async () => {
    expect(
      (await check((ls) => ls.map((l, i) => (i === 10 ? l.replace('alice@acme.test', 'eve@acme.test') : l))))
        .problem?.kind,
    ).toBe('altered');
    expect((await check((ls) => ls.filter((_, i) => i !== 21))).problem).toMatchObject({
      kind: 'deleted',
      chainSeq: 22,
    });
    const swapped = await check((ls) => {
      [ls[30], ls[31]] = [ls[31] as string, ls[30] as string];
      return ls;
    });
    expect(swapped.problem?.kind).toBe('reordered');
  });

  it('through the CLI: exit 0 when intact, 1 when not', async () => {
    const io = { stdout: () => {}, stderr: () => {} };
    expect(await auditCommand(['verify', '--ndjson', ndjson], io)).toBe(0);
    const bad = join(dir, 'bad.ndjson');
    writeFileSync(bad, lines.filter((_, i) => i !== 5).join('\n') + '\n');
    expect(await auditCommand(['verify', '--ndjson', bad], io)).toBe(1);
    expect(await auditCommand(['verify', '--spool', join(dir, 'spool')], io)).toBe(0);
  });
});
