import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, unlinkSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pgLib from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditConfigSchema } from '../src/audit/config.js';
import { startDecisionLog, type DecisionLog } from '../src/audit/decision-log.js';
import { sampleOutcome, sampleRecord } from '../src/audit/sample-records.js';
import { AuditReader } from '../src/audit/store-reader.js';
import { verifyInstance } from '../src/audit/verify.js';
import { createTestDatabase } from './support/db.js';
import { startEmbeddedPostgres, type RunningPostgres } from './support/embedded.js';
import { startTestProxy } from './support/proxy.js';
import { loadParser } from '../src/sql/parse.js';

const logger = pino({ level: 'silent' });
let pg: RunningPostgres;
let spoolRoot: string;
let reader: AuditReader;

function storeUrl(): string {
  const u = new URL(pg.url);
  u.pathname = '/pgwarden_audit';
  return u.toString();
}

/** Redelivery tests keep one segment: a sealed segment is deleted once delivered. */
const ONE_SEGMENT = 1 << 20;

function cfg(segmentBytes = 64 * 1024): ReturnType<typeof auditConfigSchema.parse> {
  return auditConfigSchema.parse({
    ndjson: 'off',
    store: { pollIntervalMs: 10, maxRetryDelayMs: 200 },
    spool: { dir: spoolRoot, segmentBytes },
  });
}

function drive(log: DecisionLog, instanceId: string, from: number, n: number): string[] {
  const ids: string[] = [];
  for (let i = from; i < from + n; i++) {
    const r = sampleRecord({ instanceId, sessionId: `${instanceId}-s${i % 4}`, seq: Math.floor(i / 4) });
    log.decide(r);
    log.complete(sampleOutcome(r));
    ids.push(r.id);
  }
  return ids;
}

async function storedIds(instance: string): Promise<string[]> {
  const { rows } = await reader.pool.query<{ id: string }>(
    'SELECT id FROM pgwarden_decisions WHERE instance_id = $1 ORDER BY id',
    [instance],
  );
  return rows.map((r) => r.id);
}

beforeAll(async () => {
  // A server of its own, so stopping it touches no other test.
  pg = await startEmbeddedPostgres();
  spoolRoot = mkdtempSync(join(tmpdir(), 'pgw-spool-'));
  reader = new AuditReader(storeUrl());
});

afterAll(async () => {
  await reader.close().catch(() => {});
  await pg.destroy();
  rmSync(spoolRoot, { recursive: true, force: true });
});

describe('store outage', () => {
  it('keeps deciding while the audit database is down and delivers every record exactly once after', async () => {
    const log = await startDecisionLog(cfg(), { instanceId: 'o-1', upstreamUrl: pg.url, logger });
    const ids = drive(log, 'o-1', 0, 100);
    expect(await log.flushToStore()).toBe(true);
    expect(await storedIds('o-1')).toHaveLength(100);

    await pg.stop();
    ids.push(...drive(log, 'o-1', 100, 1500)); // crosses several spool segments
    await new Promise((r) => setTimeout(r, 500));
    expect(log.stats().shipper?.storeUp).toBe(false);
    expect(log.stats().spool?.unshippedBytes).toBeGreaterThan(100_000);

    await pg.start();
    expect(await log.flushToStore(30_000)).toBe(true);
    expect(log.stats().shipper?.storeUp).toBe(true);
    await log.close();
    expect(await storedIds('o-1')).toEqual([...ids].sort());
    const report = await verifyInstance(reader.pool, 'o-1', undefined);
    expect(report).toMatchObject({ ok: true, checked: 2 * 1600 });
    // Only the current segment is left in the spool.
    expect(readdirSync(join(spoolRoot, 'o-1')).filter((f) => f.startsWith('seg-'))).toHaveLength(1);
  });

  it('delivers a batch twice (crash before the cursor was saved) without duplicates', async () => {
    const log = await startDecisionLog(cfg(ONE_SEGMENT), { instanceId: 'o-2', upstreamUrl: pg.url, logger });
    const ids = drive(log, 'o-2', 0, 50);
    await log.flushToStore();
    await log.close();
    unlinkSync(join(spoolRoot, 'o-2', 'cursor.json'));
    const again = await startDecisionLog(cfg(ONE_SEGMENT), {
      instanceId: 'o-2',
      upstreamUrl: pg.url,
      logger,
    });
    expect(await again.flushToStore()).toBe(true);
    await again.close();
    expect(await storedIds('o-2')).toEqual([...ids].sort());
    expect((await verifyInstance(reader.pool, 'o-2', undefined)).ok).toBe(true);
  });

  it('delivers a batch again whose outcomes were spooled after its first delivery: each stored once', async () => {
    const log = await startDecisionLog(cfg(ONE_SEGMENT), { instanceId: 'o-3', upstreamUrl: pg.url, logger });
    const records = Array.from({ length: 40 }, (_, i) =>
      sampleRecord({ instanceId: 'o-3', sessionId: 'o-3-s', seq: i }),
    );
    for (const r of records) log.decide(r);
    expect(await log.flushToStore()).toBe(true);
    await log.close();
    unlinkSync(join(spoolRoot, 'o-3', 'cursor.json'));
    const again = await startDecisionLog(cfg(ONE_SEGMENT), {
      instanceId: 'o-3',
      upstreamUrl: pg.url,
      logger,
    });
    for (const r of records) again.complete(sampleOutcome(r, { rows: 7 }));
    expect(await again.flushToStore()).toBe(true);
    await again.close();
    expect(await storedIds('o-3')).toEqual(records.map((r) => r.id).sort());
    const { rows } = await reader.pool.query<{ n: string }>(
      `SELECT (SELECT count(outcome_body) FROM pgwarden_decisions WHERE instance_id = 'o-3')
            + (SELECT count(*) FROM pgwarden_outcomes WHERE instance_id = 'o-3') AS n`,
    );
    expect(Number(rows[0]?.n)).toBe(40);
    expect(await verifyInstance(reader.pool, 'o-3', undefined)).toMatchObject({ ok: true, checked: 80 });
  });

  it('stores a batch once when its records are in the store but the head was put back', async () => {
    const log = await startDecisionLog(cfg(ONE_SEGMENT), { instanceId: 'o-4', upstreamUrl: pg.url, logger });
    const ids = drive(log, 'o-4', 0, 60);
    expect(await log.flushToStore()).toBe(true);
    await log.close();
    // The head no longer covers what is stored: the fast path's COPY meets the stored ids.
    await reader.pool.query(`UPDATE pgwarden_chain_heads SET chain_seq = 1 WHERE instance_id = 'o-4'`);
    unlinkSync(join(spoolRoot, 'o-4', 'cursor.json'));
    const again = await startDecisionLog(cfg(ONE_SEGMENT), {
      instanceId: 'o-4',
      upstreamUrl: pg.url,
      logger,
    });
    const more = drive(again, 'o-4', 60, 20);
    expect(await again.flushToStore()).toBe(true);
    expect(again.stats().shipper?.consecutiveFailures).toBe(0);
    await again.close();
    expect(await storedIds('o-4')).toEqual([...ids, ...more].sort());
    expect(await verifyInstance(reader.pool, 'o-4', undefined)).toMatchObject({ ok: true, checked: 160 });
  });

  it('keeps storing records when someone who can write the store moves the head forward', async () => {
    const log = await startDecisionLog(cfg(ONE_SEGMENT), { instanceId: 'o-5', upstreamUrl: pg.url, logger });
    const ids = drive(log, 'o-5', 0, 20);
    expect(await log.flushToStore()).toBe(true);
    await reader.pool.query(
      `UPDATE pgwarden_chain_heads SET chain_seq = 1000000000 WHERE instance_id = 'o-5'`,
    );
    ids.push(...drive(log, 'o-5', 20, 20));
    expect(await log.flushToStore()).toBe(true);
    await log.close();
    expect(await storedIds('o-5')).toEqual([...ids].sort());
    // The head stays where it was put (it only moves forward), and verify says so.
    expect((await verifyInstance(reader.pool, 'o-5', undefined)).ok).toBe(false);
  });

  it('after kill -9 of a process mid-load, every record reported durable reaches the store', async () => {
    const root = resolve(import.meta.dirname, '..');
    // The child decides in a tight loop and reports each id only once whenDurable() called back,
    // i.e. at the point where the proxy would forward the statement. The store is down so all stay
    // spooled.
    const script = `
      import { startDecisionLog } from '${root}/src/audit/decision-log.ts';
      import { auditConfigSchema } from '${root}/src/audit/config.ts';
      import { sampleRecord, sampleOutcome } from '${root}/src/audit/sample-records.ts';
      import pgLib from 'pg';
import pino from 'pino';
      const cfg = auditConfigSchema.parse({ ndjson: 'off', store: { url: 'postgres://x:y@127.0.0.1:1/none', maxRetryDelayMs: 100 },
        spool: { dir: ${JSON.stringify(spoolRoot)}, segmentBytes: 65536, fsyncIntervalMs: 50 } });
      const log = await startDecisionLog(cfg, { instanceId: 'o-killed', upstreamUrl: 'postgres://x:y@127.0.0.1:1/none', logger: pino({ level: 'silent' }) });
      let i = 0;
      const tick = () => {
        let out = '';
        for (let k = 0; k < 50; k++, i++) {
          const r = sampleRecord({ instanceId: 'o-killed', sessionId: 'k' + (i % 8), seq: i });
          log.decide(r);
          out += r.id + '\\n';
          if (i % 2 === 0) log.complete(sampleOutcome(r));
        }
        log.whenDurable((err) => {
          if (err) throw err;
          process.stdout.write(out);
          setImmediate(tick);
        });
      };
      tick();
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise<void>((done) => {
      const t = setInterval(() => {
        if (out.split('\n').length > 3000) {
          clearInterval(t);
          child.kill('SIGKILL');
          done();
        }
      }, 20);
    });
    await new Promise((r) => child.once('exit', r));
    const reported = out.split('\n').filter((l) => /^[0-9a-f-]{36}$/.test(l));
    expect(reported.length).toBeGreaterThanOrEqual(3000);

    // A new instance (another id) finds the dead instance's spool and delivers it.
    const log = await startDecisionLog(cfg(), { instanceId: 'o-new', upstreamUrl: pg.url, logger });
    expect(await log.flushToStore(30_000)).toBe(true);
    await log.close();
    const stored = new Set(await storedIds('o-killed'));
    const missing = reported.filter((id) => !stored.has(id));
    expect(missing).toEqual([]);
    expect((await verifyInstance(reader.pool, 'o-killed', undefined)).ok).toBe(true);
  });

  it('through the proxy: clients keep querying while the store is down, and every statement arrives once', async () => {
    await loadParser();
    const app = await createTestDatabase('audit_outage_app');
    await app.sql('CREATE TABLE items (id int PRIMARY KEY, name text)');
    await app.sql("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g");
    const cfg = auditConfigSchema.parse({
      ndjson: 'off',
      store: { url: storeUrl(), pollIntervalMs: 10, maxRetryDelayMs: 200 },
      spool: { dir: spoolRoot },
    });
    const log = await startDecisionLog(cfg, { instanceId: 'o-proxy', upstreamUrl: app.url, logger });
    const proxy = await startTestProxy(app, { tables: ['public.items'], sink: log });
    const client = new pgLib.Client({ connectionString: await proxy.url({ human: 'olga@acme.test' }) });
    await client.connect();
    const run = async (from: number, n: number): Promise<void> => {
      for (let i = from; i < from + n; i++)
        await client.query(`SELECT name FROM items WHERE id = ${(i % 10) + 1} AND ${i} >= 0`);
    };
    try {
      await run(0, 50);
      expect(await log.flushToStore()).toBe(true);
      await pg.stop();
      await run(50, 200); // the store is down: statements still run, records wait in the spool
      expect(log.stats().shipper?.storeUp).toBe(false);
      await pg.start();
      expect(await log.flushToStore(30_000)).toBe(true);
      const { rows } = await reader.pool.query<{ sql: string; n: string }>(
        `SELECT sql, count(*) AS n FROM pgwarden_decisions WHERE instance_id = 'o-proxy' AND kind = 'statement' GROUP BY sql`,
      );
      expect(rows).toHaveLength(250);
      expect(rows.every((r) => r.n === '1')).toBe(true);
      expect((await verifyInstance(reader.pool, 'o-proxy', undefined)).ok).toBe(true);
    } finally {
      await client.end();
      await proxy.close();
      await log.close();
      await app.drop();
    }
  });
});
