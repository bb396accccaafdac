import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditCommand } from '../cli/audit.js';
import { entryLine, outcomeBody, recordBody } from './canonical.js';
import { GENESIS, linkHash } from './chain.js';
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

  it('reports a line given a second key that a first-key reader would see (found by the red team)', async () => {
    // JSON.parse keeps the last of two equal keys, so the parsed line looked intact; a SIEM that
    // keeps the first sees level 30 on a denial, or a forged record.
    const level = await check((ls) =>
      ls.map((l, i) => (i === 10 ? l.replace('{"level":30,', '{"level":30,"\\u006cevel":30,') : l)),
    );
    expect(level.problem).toMatchObject({ kind: 'altered', message: expect.stringContaining('bytes') });
    const forged = await check((ls) =>
      ls.map((l, i) =>
        i === 12 ? l.replace('"record":', '"\\u0072ecord":{"verdict":"allow"},"record":') : l,
      ),
    );
    expect(forged.problem?.kind).toBe('altered');
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

describe('the outer fields of NDJSON lines, and lines outside the chain', () => {
  let file: string;
  let denyLines: string[];

  beforeAll(async () => {
    file = join(dir, 'deny.ndjson');
    const cfg = auditConfigSchema.parse({
      ndjson: file,
      store: { url: DOWN },
      spool: { dir: join(dir, 'spool-deny') },
    });
    const log = await startDecisionLog(cfg, { instanceId: 'vd', upstreamUrl: DOWN, logger });
    for (let i = 0; i < 6; i++) {
      const deny = i % 3 === 1;
      const r = sampleRecord({
        instanceId: 'vd',
        sessionId: 's',
        seq: i,
        ...(deny ? { verdict: 'deny' } : {}),
      });
      log.decide(r);
      if (!deny) log.complete(sampleOutcome(r));
      await new Promise((done) => setImmediate(done));
    }
    await log.close();
    denyLines = readFileSync(file, 'utf8').trim().split('\n');
  });

  async function checkDeny(
    edit: (ls: string[]) => string[],
  ): Promise<Awaited<ReturnType<typeof verifyLines>>> {
    const f = join(dir, `deny-${Math.random()}.ndjson`);
    writeFileSync(f, edit([...denyLines]).join('\n') + '\n');
    return verifyLines([f], undefined);
  }

  it('accepts the intact output: denials at warn, the rest at info', async () => {
    expect(denyLines.filter((l) => l.startsWith('{"level":40,'))).toHaveLength(2);
    expect(await verifyLines([file], undefined)).toMatchObject([{ instance: 'vd', ok: true, unchained: 0 }]);
  });

  it('reports a denial relabelled as info, an edited time and an edited instance (the hash covers only the body)', async () => {
    const denial = denyLines.findIndex((l) => l.startsWith('{"level":40,'));
    const relabelled = await checkDeny((ls) =>
      ls.map((l, i) => (i === denial ? l.replace('{"level":40,', '{"level":30,') : l)),
    );
    expect(relabelled[0]?.problem).toMatchObject({ kind: 'altered' });
    expect(relabelled[0]?.problem?.message).toContain('level');
    const retimed = await checkDeny((ls) =>
      ls.map((l, i) => (i === 2 ? l.replace(/"time":"[^"]+"/, '"time":"2020-01-01T00:00:00.000Z"') : l)),
    );
    expect(retimed[0]?.problem?.message).toContain('time');
    const moved = await checkDeny((ls) =>
      ls.map((l, i) => (i === 0 ? l.replace('"instance":"vd"', '"instance":"vx"') : l)),
    );
    expect(moved.find((r) => r.instance === 'vx')?.problem?.message).toContain('instance');
    const extra = await checkDeny((ls) =>
      ls.map((l, i) => (i === 3 ? l.replace('"mac":null,', '"mac":null,"note":"ok",') : l)),
    );
    expect(extra[0]?.problem?.message).toContain('set of fields');
  });

  it('counts lines outside the chain (chainSeq 0) as a warning that does not fail, in the report and the CLI', async () => {
    const r = sampleRecord({ instanceId: 'vd', sessionId: 's2', seq: 0, verdict: 'deny' });
    const body = recordBody(r, true);
    const unchained = entryLine(
      'decision',
      'vd',
      r.time,
      true,
      { seq: 0, prev: GENESIS, hash: linkHash(GENESIS, body), mac: null },
      body,
    ).trimEnd();
    const o = outcomeBody(sampleOutcome(r));
    const unchainedOutcome = entryLine(
      'outcome',
      'vd',
      JSON.parse(o).time as string,
      false,
      { seq: 0, prev: GENESIS, hash: linkHash(GENESIS, o), mac: null },
      o,
    ).trimEnd();
    const f = join(dir, 'unchained.ndjson');
    writeFileSync(
      f,
      [...denyLines.slice(0, 3), unchained, unchainedOutcome, ...denyLines.slice(3)].join('\n') + '\n',
    );
    expect(await verifyLines([f], undefined)).toMatchObject([{ instance: 'vd', ok: true, unchained: 2 }]);
    const out: string[] = [];
    const io = { stdout: (s: string) => out.push(s), stderr: () => {} };
    expect(await auditCommand(['verify', '--ndjson', f], io)).toBe(0);
    expect(out.join('\n')).toMatch(/WARNING\s+vd: 2 line\(s\) outside the chain/);
    out.length = 0;
    expect(await auditCommand(['verify', '--ndjson', f, '--json'], io)).toBe(0);
    expect(JSON.parse(out.join(''))).toMatchObject({ ok: true, unchained: 2, instances: [{ unchained: 2 }] });
    // An unchained line is still held to its body: relabelling it is reported.
    writeFileSync(f, [unchained.replace('{"level":40,', '{"level":30,'), ...denyLines].join('\n') + '\n');
    expect((await verifyLines([f], undefined))[0]?.problem?.message).toContain('level');
  });
});
