import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { PgwardenError } from '../errors/registry.js';
import { auditConfigSchema } from './config.js';
import { startDecisionLog } from './decision-log.js';
import { sampleOutcome, sampleRecord } from './sample-records.js';
import { instanceDirName } from './spool-layout.js';
import { verifyLines } from './verify-lines.js';

const logger = pino({ level: 'silent' });
// Nothing listens on port 1: the store is down for the whole test, so the spool only grows.
const DOWN = 'postgres://u:p@127.0.0.1:1/none';
const dirs: string[] = [];

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'pgw-dl-'));
  dirs.push(d);
  return d;
}

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('startDecisionLog', () => {
  it('refuses with PGW_AUDIT_UNAVAILABLE once the spool is full, and records nothing for it', async () => {
    const dir = tmp();
    const cfg = auditConfigSchema.parse({
      ndjson: 'off',
      store: { url: DOWN },
      spool: { dir, maxBytes: 65536, maxBytesPerTenant: 65536 },
    });
    const log = await startDecisionLog(cfg, { instanceId: 'full', upstreamUrl: DOWN, logger });
    let accepted = 0;
    let error: unknown;
    for (let i = 0; i < 10_000 && error === undefined; i++) {
      try {
        log.decide(sampleRecord({ instanceId: 'full', sessionId: 's', seq: i }));
        accepted++;
      } catch (err) {
        error = err;
      }
    }
    expect(error).toBeInstanceOf(PgwardenError);
    expect((error as PgwardenError).code).toBe('PGW_AUDIT_UNAVAILABLE');
    expect((error as PgwardenError).sqlstate).toBe('53000');
    expect(accepted).toBeGreaterThan(50);
    expect(log.stats()).toMatchObject({ decided: accepted, refused: 1 });
    expect(log.stats().spool?.unshippedBytes).toBeLessThanOrEqual(65536);
    await log.close();
  });

  it('refuses a tenant whose records fill its share of the spool, and goes on for everyone else', async () => {
    const dir = tmp();
    const cfg = auditConfigSchema.parse({
      ndjson: 'off',
      store: { url: DOWN },
      spool: { dir, maxBytes: 4 * 65536 },
    });
    const log = await startDecisionLog(cfg, { instanceId: 'share', upstreamUrl: DOWN, logger });
    // The attack: one tenant sends long statements faster than the store takes them (here the
    // store is down, the limit of "slow").
    const long = 'SELECT ' + "'x'".repeat(3000);
    let floods = 0;
    let error: unknown;
    for (let i = 0; i < 1000 && error === undefined; i++) {
      try {
        log.decide(
          sampleRecord({ instanceId: 'share', sessionId: 'flood', seq: i, tenant: 'acme', sql: long }),
        );
        floods++;
      } catch (err) {
        error = err;
      }
    }
    expect(error).toMatchObject({ code: 'PGW_AUDIT_UNAVAILABLE', sqlstate: '53000' });
    expect((error as PgwardenError).detail).toMatch(/this tenant's share of the decision spool is full/);
    expect(floods).toBeGreaterThan(5);
    expect(log.stats().spool?.unshippedBytes).toBeLessThanOrEqual(65536 + 2048);
    // The benign look-alike, long statements of another tenant within its share, goes on, and so
    // do tokenless records (authentication failures).
    for (let i = 0; i < 5; i++) {
      log.decide(
        sampleRecord({ instanceId: 'share', sessionId: 'other', seq: i, tenant: 'globex', sql: long }),
      );
      log.decide(
        sampleRecord({ instanceId: 'share', sessionId: 'anon', seq: i, tenant: null, kind: 'auth_failure' }),
      );
    }
    expect(log.stats()).toMatchObject({ decided: floods + 10, refused: 1 });
    await log.close();
  });

  it("counts a tenant's outcomes in its share: large server errors cannot fill the spool", async () => {
    const dir = tmp();
    const cfg = auditConfigSchema.parse({
      ndjson: 'off',
      store: { url: DOWN },
      spool: { dir, maxBytes: 4 * 65536 },
    });
    const log = await startDecisionLog(cfg, { instanceId: 'outcomes', upstreamUrl: DOWN, logger });
    // The attack: short statements whose server error quotes 4 KB of input (SELECT repeat(...)::int).
    const quoted = `invalid input syntax for type integer: "${'x'.repeat(4000)}"`;
    let ran = 0;
    let error: unknown;
    for (let i = 0; i < 1000 && error === undefined; i++) {
      const r = sampleRecord({ instanceId: 'outcomes', sessionId: 'flood', seq: i, tenant: 'acme' });
      try {
        log.decide(r);
        ran++;
        log.complete(sampleOutcome(r, { sqlstate: '22P02', errorMessage: quoted }), 'acme');
      } catch (err) {
        error = err;
      }
    }
    expect(error).toMatchObject({ code: 'PGW_AUDIT_UNAVAILABLE' });
    expect(ran).toBeLessThan(20);
    expect(log.stats().spool?.unshippedBytes).toBeLessThanOrEqual(65536 + 8192);
    // Another tenant goes on.
    const other = sampleRecord({ instanceId: 'outcomes', sessionId: 'other', seq: 0, tenant: 'globex' });
    expect(() => log.decide(other)).not.toThrow();
    await log.close();
  });

  it('with onFull ndjson-only, runs on with NDJSON lines outside the chain (chainSeq 0)', async () => {
    const dir = tmp();
    const out = join(dir, 'decisions.ndjson');
    const cfg = auditConfigSchema.parse({
      ndjson: out,
      store: { url: DOWN },
      spool: { dir: join(dir, 'spool'), maxBytes: 65536, onFull: 'ndjson-only' },
    });
    const log = await startDecisionLog(cfg, { instanceId: 'nd', upstreamUrl: DOWN, logger });
    for (let i = 0; i < 400; i++) {
      const r = sampleRecord({ instanceId: 'nd', sessionId: 's', seq: i });
      log.decide(r);
      log.complete(sampleOutcome(r));
    }
    expect(log.stats().unspooled).toBeGreaterThan(0);
    await log.close();
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l.msg === 'decision')).toHaveLength(400);
    expect(lines.some((l) => l.chainSeq === 0)).toBe(true);
  });

  it('redacts bind parameters unless configured otherwise', async () => {
    const dir = tmp();
    const out = join(dir, 'd.ndjson');
    const base = { store: { url: DOWN }, spool: { dir: join(dir, 'spool') } };
    const a = await startDecisionLog(auditConfigSchema.parse({ ...base, ndjson: out }), {
      instanceId: 'red',
      upstreamUrl: DOWN,
      logger,
    });
    a.decide(sampleRecord({ instanceId: 'red', sessionId: 's', seq: 0, parameters: ['4111-1111'] }));
    await a.close();
    const line = JSON.parse(readFileSync(out, 'utf8').trim()) as { record: { parameters: unknown } };
    expect(line.record.parameters).toBeNull();

    const out2 = join(dir, 'd2.ndjson');
    const b = await startDecisionLog(
      auditConfigSchema.parse({
        ...base,
        ndjson: out2,
        redactParameters: false,
        spool: { dir: join(dir, 'spool2') },
      }),
      { instanceId: 'clear', upstreamUrl: DOWN, logger },
    );
    b.decide(sampleRecord({ instanceId: 'clear', sessionId: 's', seq: 0, parameters: ['42'] }));
    await b.close();
    expect(
      (JSON.parse(readFileSync(out2, 'utf8').trim()) as { record: { parameters: unknown } }).record
        .parameters,
    ).toEqual(['42']);
  });

  it('writes NDJSON in pino line format with the record and its chain link', async () => {
    const dir = tmp();
    const out = join(dir, 'd.ndjson');
    const log = await startDecisionLog(auditConfigSchema.parse({ ndjson: out, durable: false }), {
      instanceId: 'nd2',
      upstreamUrl: DOWN,
      logger,
    });
    const r = sampleRecord({ instanceId: 'nd2', sessionId: 's', seq: 0, verdict: 'deny' });
    log.decide(r);
    log.complete(sampleOutcome(r));
    await log.close();
    const [d, o] = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(d).toMatchObject({
      level: 40,
      msg: 'decision',
      instance: 'nd2',
      chainSeq: 1,
      record: { id: r.id, verdict: 'deny' },
    });
    expect(o).toMatchObject({
      level: 30,
      msg: 'outcome',
      chainSeq: 2,
      prev: d?.hash,
      outcome: { recordId: r.id },
    });
  });

  it('writes a statement holding line separators and C1 or bidi controls as one NDJSON line that verifies', async () => {
    const dir = tmp();
    const out = join(dir, 'd.ndjson');
    const log = await startDecisionLog(auditConfigSchema.parse({ ndjson: out, durable: false }), {
      instanceId: 'nd3',
      upstreamUrl: DOWN,
      logger,
    });
    // The attack (red team, round 8): raw U+2028 / U+0085 cut the entry in two for a SIEM that
    // splits lines as Python does, and U+202E reorders what a responder's terminal shows.
    const sql = 'SELECT \'a\u2028{"forged":1}\u2029\u0085b\u202e\' AS x';
    const r = { ...sampleRecord({ instanceId: 'nd3', sessionId: 's', seq: 0 }), sql };
    log.decide(r);
    log.complete({ ...sampleOutcome(r), errorMessage: 'bad \u2028 value' });
    // The look-alike: ordinary non-ASCII text is written as it is.
    const plain = {
      ...sampleRecord({ instanceId: 'nd3', sessionId: 's', seq: 1 }),
      sql: "SELECT 'café 漢字'",
    };
    log.decide(plain);
    await log.close();
    const text = readFileSync(out, 'utf8');
    expect(text).not.toMatch(/[\u0085\u2028\u2029\u202e]/);
    expect(text).toContain("SELECT 'café 漢字'");
    // eslint-disable-next-line no-control-regex -- the line ends of Python str.splitlines
    const lines = text.split(/\r\n|[\n\r\v\f\x1c-\x1e\u0085\u2028\u2029]/).filter((l) => l !== '');
    expect(lines).toHaveLength(3);
    expect((JSON.parse(lines[0]!) as { record: { sql: string } }).record.sql).toBe(sql);
    const [report] = await verifyLines([out], undefined);
    expect(report).toMatchObject({ instance: 'nd3', problem: null });
  });

  it("writes one turn's decisions together, and tells whenDurable only once they are written", async () => {
    const dir = tmp();
    const cfg = auditConfigSchema.parse({ ndjson: 'off', store: { url: DOWN }, spool: { dir } });
    const log = await startDecisionLog(cfg, { instanceId: 'group', upstreamUrl: DOWN, logger });
    const spooled = (): string =>
      readdirSync(join(dir, instanceDirName('group')))
        .filter((f) => f.startsWith('seg-'))
        .map((f) => readFileSync(join(dir, instanceDirName('group'), f), 'utf8'))
        .join('');
    const records = [0, 1, 2].map((seq) => sampleRecord({ instanceId: 'group', sessionId: 's', seq }));
    for (const r of records) log.decide(r);
    let durable: unknown = 'not yet';
    log.whenDurable?.((err) => {
      durable = err;
      // At the moment of the callback every record decided before it is in the spool file.
      for (const r of records) expect(spooled()).toContain(r.id);
    });
    // Queued, not written: the write comes at the end of this event-loop turn.
    expect(durable).toBe('not yet');
    for (const r of records) expect(spooled()).not.toContain(r.id);
    await new Promise((done) => setImmediate(done));
    expect(durable).toBeUndefined();
    // Nothing queued: the callback comes at once.
    let again: unknown = 'not yet';
    log.whenDurable?.((err) => (again = err));
    expect(again).toBeUndefined();
    await log.close();
  });

  it('refuses statements once closed instead of reopening the spool', async () => {
    const dir = tmp();
    const cfg = auditConfigSchema.parse({ ndjson: 'off', store: { url: DOWN }, spool: { dir } });
    const log = await startDecisionLog(cfg, { instanceId: 'closed', upstreamUrl: DOWN, logger });
    await log.close();
    expect(() => log.decide(sampleRecord({ instanceId: 'closed', sessionId: 's', seq: 0 }))).toThrow(
      PgwardenError,
    );
    await log.close(); // twice is fine
  });
});
