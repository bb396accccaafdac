import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryLine, outcomeBody, recordBody } from '../src/audit/canonical.js';
import { Chain, GENESIS } from '../src/audit/chain.js';
import { startDecisionLog } from '../src/audit/decision-log.js';
import { sampleOutcome, sampleRecord } from '../src/audit/sample-records.js';
import type { Lines } from '../src/audit/spool-reader.js';
import { instanceDirName } from '../src/audit/spool-layout.js';
import { ensureSchema } from '../src/audit/store-schema.js';
import { applyRetention } from '../src/audit/retention.js';
import { Shipper } from '../src/audit/shipper.js';
import { deliver } from '../src/audit/store-writer.js';
import { verifyAll, verifyInstance } from '../src/audit/verify.js';
import { startTestAuditStore, type TestAuditStore } from './support/audit-store.js';

/** Delivery to the store when more than one process delivers a chain (red team, round 41). */

const logger = pino({ level: 'silent' });
let store: TestAuditStore;
let pool: pg.Pool;

beforeAll(async () => {
  store = await startTestAuditStore('audit_deliver');
  pool = new pg.Pool({ connectionString: store.db.url, max: 4 });
  await ensureSchema(pool);
});
afterAll(async () => {
  await pool?.end();
  await store?.close();
});

/** Entry lines of `n` statements of `instance`: decision, outcome, ...; the first `aged` two days old. */
function chainLines(instance: string, n: number, aged = 0): string[] {
  const chain = new Chain({ seq: 0, hash: GENESIS }, undefined);
  const lines: string[] = [];
  const add = (type: 'decision' | 'outcome', time: string, body: string): void => {
    const link = chain.peek(body);
    chain.commit(link);
    lines.push(entryLine(type, instance, time, false, link, body).trimEnd());
  };
  for (let i = 0; i < n; i++) {
    const time = new Date(Date.now() - (i < aged ? 2 * 86_400_000 : 0)).toISOString();
    const r = sampleRecord({ instanceId: instance, sessionId: `${instance}-s`, seq: i, time });
    add('decision', r.time, recordBody(r, true));
    add('outcome', r.time, outcomeBody(sampleOutcome(r, { time })));
  }
  return lines;
}

function batch(lines: string[]): Lines {
  return {
    decisions: lines.filter((l) => l.includes('"msg":"decision"')),
    outcomes: lines.filter((l) => l.includes('"msg":"outcome"')),
    ordered: [...lines],
    last: lines.at(-1) ?? null,
  };
}

describe('delivering one chain from two places at once', () => {
  it('stores each outcome once, also before the chain has a head row', async () => {
    // Two instances delivering one stopped instance's spool, their batches cut at different
    // places: with no head row yet, FOR UPDATE on it locked nothing, and an outcome was stored
    // in its decision's row and in pgwarden_outcomes both.
    for (let k = 0; k < 20; k++) {
      const instance = `twice-${k}`;
      const lines = chainLines(instance, 3);
      await Promise.all([deliver(pool, batch(lines.slice(0, 4))), deliver(pool, batch(lines.slice(1, 4)))]);
      await deliver(pool, batch(lines.slice(4)));
    }
    const { rows } = await pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM pgwarden_outcomes o JOIN pgwarden_decisions d ON d.id = o.record_id
       WHERE d.outcome_body IS NOT NULL AND d.instance_id LIKE 'twice-%'`,
    );
    expect(Number(rows[0]?.n)).toBe(0);
    const reports = (await verifyAll(pool, undefined)).filter((r) => r.instance.startsWith('twice-'));
    expect(reports).toHaveLength(20);
    expect(reports.filter((r) => !r.ok)).toEqual([]);
  });
});

describe('a batch delivered again after retention', () => {
  it('leaves deleted what retention deleted', async () => {
    const lines = chainLines('g-aged', 5, 3);
    await deliver(pool, batch(lines));
    expect(await applyRetention(pool, new Date(Date.now() - 86_400_000))).toBeGreaterThan(0);
    expect(await verifyInstance(pool, 'g-aged', undefined)).toMatchObject({ ok: true, firstSeq: 7 });
    // The cursor was not saved before a crash: the same batch again. The records retention had
    // deleted came back below the anchor, reported as inserted by hand (red team, round 41).
    await deliver(pool, batch(lines));
    expect(await verifyInstance(pool, 'g-aged', undefined)).toMatchObject({
      ok: true,
      firstSeq: 7,
      lastSeq: 10,
    });
  });
});

describe("a stopped instance's spool delivered by another", () => {
  it('keeps its last segment, so the instance goes on with its chain when it starts again', async () => {
    const cfg = store.config({ spool: { dir: store.spoolRoot, segmentBytes: 16 * 1024 } });
    const down = {
      ...cfg,
      store: { ...cfg.store, url: 'postgres://u:p@127.0.0.1:1/none', maxRetryDelayMs: 60_000 },
    };
    // The instance spools while the store is down, and stops.
    const stopped = await startDecisionLog(down, {
      instanceId: 'g-stopped',
      upstreamUrl: store.db.url,
      logger,
    });
    for (let i = 0; i < 40; i++) {
      const r = sampleRecord({ instanceId: 'g-stopped', sessionId: 'g', seq: i });
      stopped.decide(r);
      stopped.complete(sampleOutcome(r));
    }
    await stopped.close();
    // As after kill -9: its owner file names a process that is gone.
    const dir = join(store.spoolRoot, instanceDirName('g-stopped'));
    writeFileSync(join(dir, 'owner.json'), JSON.stringify({ pid: 2 ** 22 + 7, startedAt: '' }));
    // Another instance delivers it.
    const other = await startDecisionLog(cfg, { instanceId: 'g-other', upstreamUrl: store.db.url, logger });
    for (let i = 0; i < 100 && other.stats().shipper?.orphanSpools !== 0; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(other.stats().shipper?.orphanSpools).toBe(0);
    await other.close();
    expect((await verifyInstance(pool, 'g-stopped', undefined)).lastSeq).toBe(80);
    // It starts again: its chain goes on at 81 (it started over at 1, and verify reported every
    // later check as reordered).
    const again = await startDecisionLog(cfg, { instanceId: 'g-stopped', upstreamUrl: store.db.url, logger });
    const r = sampleRecord({ instanceId: 'g-stopped', sessionId: 'g2', seq: 0 });
    again.decide(r);
    again.complete(sampleOutcome(r));
    expect(await again.flushToStore()).toBe(true);
    await again.close();
    expect(await verifyInstance(pool, 'g-stopped', undefined)).toMatchObject({ ok: true, lastSeq: 82 });
  });

  it('is left to its instance once that starts again, untouched', async () => {
    const root = join(store.spoolRoot, 'owner-back');
    const theirs = join(root, 'g-back');
    mkdirSync(theirs, { recursive: true });
    writeFileSync(join(theirs, 'seg-0000000000000001.ndjson'), chainLines('g-back', 3).join('\n') + '\n');
    writeFileSync(join(theirs, 'owner.json'), JSON.stringify({ pid: 2 ** 22 + 7, startedAt: '' }));
    const ours = join(root, 'g-deliverer');
    mkdirSync(ours, { recursive: true });
    const shipper = new Shipper({
      pool,
      prepare: async () => {},
      ownDir: ours,
      spoolRoot: root,
      batchSize: 1000,
      pollIntervalMs: 10,
      maxRetryDelayMs: 100,
      logger,
      onDelivered: () => {},
    });
    expect(shipper.stats().orphanSpools).toBe(1);
    // Its instance starts again (another process) before the first round: it writes to that spool
    // again, and a delivery as a stopped instance's removed it under it (red team, round 41).
    const alive = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      writeFileSync(join(theirs, 'owner.json'), JSON.stringify({ pid: alive.pid, startedAt: '' }));
      shipper.start();
      expect(await shipper.drain(5000)).toBe(true);
      await shipper.stop();
      expect(shipper.stats().orphanSpools).toBe(0);
      expect(readdirSync(theirs).sort()).toEqual(['owner.json', 'seg-0000000000000001.ndjson']);
      const { rows } = await pool.query(`SELECT 1 FROM pgwarden_decisions WHERE instance_id = 'g-back'`);
      expect(rows).toHaveLength(0);
    } finally {
      alive.kill();
    }
  });

  it("goes on from the store's head when its spool was removed whole", async () => {
    const cfg = store.config({ hmacKey: 'k'.repeat(40) });
    const run = async (sessionId: string, n: number): Promise<void> => {
      const log = await startDecisionLog(cfg, { instanceId: 'g-wiped', upstreamUrl: store.db.url, logger });
      for (let i = 0; i < n; i++) {
        const r = sampleRecord({ instanceId: 'g-wiped', sessionId, seq: i });
        log.decide(r);
        log.complete(sampleOutcome(r));
      }
      expect(await log.flushToStore()).toBe(true);
      await log.close();
    };
    await run('w1', 5);
    // A spool lost with its container, say: the instance started a second chain at 1, which
    // verify reported as reordered from then on (red team, round 41).
    rmSync(join(store.spoolRoot, instanceDirName('g-wiped')), { recursive: true, force: true });
    await run('w2', 2);
    expect(await verifyInstance(pool, 'g-wiped', 'k'.repeat(40))).toMatchObject({ ok: true, lastSeq: 14 });
  });

  it('writes on in a new segment when the one it writes is removed under it', async () => {
    const log = await startDecisionLog(store.config(), {
      instanceId: 'g-removed',
      upstreamUrl: store.db.url,
      logger,
    });
    const ids: string[] = [];
    const decide = (sessionId: string): void => {
      for (let i = 0; i < 5; i++) {
        const r = sampleRecord({ instanceId: 'g-removed', sessionId, seq: i });
        log.decide(r);
        log.complete(sampleOutcome(r));
        ids.push(r.id);
      }
    };
    try {
      decide('r1');
      expect(await log.flushToStore()).toBe(true);
      // The spool removed under a running instance: its records went on into the removed file,
      // acknowledged durable, and never reached the store (red team, round 41).
      rmSync(join(store.spoolRoot, instanceDirName('g-removed')), { recursive: true, force: true });
      decide('r2');
      await new Promise((r) => setImmediate(r));
      expect(await log.flushToStore()).toBe(true);
    } finally {
      await log.close();
    }
    const { rows } = await pool.query<{ id: string }>(
      `SELECT id FROM pgwarden_decisions WHERE instance_id = 'g-removed' ORDER BY id`,
    );
    expect(rows.map((r) => r.id)).toEqual([...ids].sort());
    expect(await verifyInstance(pool, 'g-removed', undefined)).toMatchObject({ ok: true, lastSeq: 20 });
  });
});
