import { randomUUID } from 'node:crypto';
import pg from 'pg';
import pino from 'pino';
import { buildApiApp } from '../src/api/app.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDecisionLog } from '../src/audit/decision-log.js';
import { applyRetention } from '../src/audit/retention.js';
import { sampleOutcome, sampleRecord } from '../src/audit/sample-records.js';
import type { AuditReader } from '../src/audit/store-reader.js';
import { GENESIS, linkHash, linkMac } from '../src/audit/chain.js';
import { verifyAll, verifyInstance } from '../src/audit/verify.js';
import { startTestAuditStore, type TestAuditStore } from './support/audit-store.js';
import type { TestDatabase } from './support/db.js';

const logger = pino({ level: 'silent' });
let store: TestAuditStore;
let db: TestDatabase;
let reader: AuditReader;

const KEY = 'verify-test-hmac-key-kept-away-from-the-store';

/**
 * A fresh instance chain of `n` statements with outcomes (denied ones have none); returns decision
 * ids in order.
 */
async function chain(
  instanceId: string,
  n: number,
  times?: (i: number) => string,
  o: { key?: string; deny?: (i: number) => boolean } = {},
): Promise<string[]> {
  const log = await startDecisionLog(store.config(o.key ? { hmacKey: o.key } : {}), {
    instanceId,
    upstreamUrl: db.url,
    logger,
  });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const denied = o.deny?.(i) === true;
    const r = sampleRecord({
      instanceId,
      sessionId: `${instanceId}-s`,
      seq: i,
      ...(times ? { time: times(i) } : {}),
      ...(denied ? { verdict: 'deny' as const } : {}),
    });
    log.decide(r);
    if (!denied) log.complete(sampleOutcome(r, { rows: i }));
    ids.push(r.id);
  }
  await log.flushToStore();
  await log.close();
  expect((await verifyInstance(reader.pool, instanceId, o.key)).ok).toBe(true);
  return ids;
}

/** A copy of a decision row under a new id at another chain position (what an intruder inserts). */
async function insertCopy(id: string, chainSeq: number): Promise<string> {
  const fake = randomUUID();
  await db.sql(
    `INSERT INTO pgwarden_decisions
     SELECT $2, instance_id, $3, prev_hash, hash, mac, replace(body, id, $2), time, kind, session_id,
       seq, human, agent, tenant, verdict, sql, facets
     FROM pgwarden_decisions WHERE id = $1`,
    [id, fake, chainSeq],
  );
  return fake;
}

beforeAll(async () => {
  store = await startTestAuditStore('audit_verify');
  ({ db, reader } = store);
});

afterAll(() => store.close());

describe('audit verify', () => {
  it('reads an outcome whose error message ends in half of a surrogate pair (found by the red team)', async () => {
    // pgwarden cut long server errors by UTF-16 unit: an agent could put half an emoji at the cut,
    // which PostgreSQL's jsonb refuses, and verify read outcome times through jsonb: it failed for
    // good. New records are cut whole (clip.ts); verify no longer reads bodies as jsonb.
    const log = await startDecisionLog(store.config({}), {
      instanceId: 'surrogate',
      upstreamUrl: db.url,
      logger,
    });
    const r = sampleRecord({ instanceId: 'surrogate', sessionId: 's', seq: 0 });
    log.decide(r);
    log.complete(
      sampleOutcome(r, { sqlstate: '22P02', errorMessage: `invalid input: "${'😀'.repeat(3)}\ud83d` }),
    );
    await log.flushToStore();
    await log.close();
    expect(await verifyInstance(reader.pool, 'surrogate', undefined)).toMatchObject({ ok: true });
  });

  it('reports an edited record body as altered, at that record', async () => {
    const ids = await chain('v-edit', 10);
    await db.sql(
      `UPDATE pgwarden_decisions SET body = replace(body, 'alice@acme.test', 'mallory@acme.test') WHERE id = $1`,
      [ids[6]],
    );
    const r = await verifyInstance(reader.pool, 'v-edit', undefined);
    expect(r.problem).toMatchObject({ kind: 'altered', recordId: ids[6] });
  });

  it('reports an edited search column (body untouched) as altered', async () => {
    const ids = await chain('v-col', 5);
    await db.sql(`UPDATE pgwarden_decisions SET human = 'nobody' WHERE id = $1`, [ids[2]]);
    const r = await verifyInstance(reader.pool, 'v-col', undefined);
    expect(r.problem).toMatchObject({ kind: 'altered', recordId: ids[2] });
    expect(r.problem?.message).toContain('human');
  });

  it('reports a record hidden from searches (its facets edited) as altered', async () => {
    const ids = await chain('v-facets', 5);
    await db.sql(
      `UPDATE pgwarden_decisions SET facets = array_remove(facets, 'h:alice@acme.test') WHERE id = $1`,
      [ids[1]],
    );
    const r = await verifyInstance(reader.pool, 'v-facets', undefined);
    expect(r.problem).toMatchObject({ kind: 'altered', recordId: ids[1] });
    expect(r.problem?.message).toContain('facets');
  });

  it('reports an edited outcome (rows) as altered', async () => {
    const ids = await chain('v-rows', 5);
    await db.sql(
      `UPDATE pgwarden_decisions SET outcome_body = replace(outcome_body, '"rows":3', '"rows":0'), rows = 0 WHERE id = $1`,
      [ids[3]],
    );
    const r = await verifyInstance(reader.pool, 'v-rows', undefined);
    expect(r.problem).toMatchObject({ kind: 'altered', recordId: ids[3] });
  });

  it('reports a deleted record as deleted, at the first missing chain position', async () => {
    const ids = await chain('v-del', 10);
    const [row] = await db.sql<{ chain_seq: string }>(
      'SELECT chain_seq FROM pgwarden_decisions WHERE id = $1',
      [ids[4]],
    );
    await db.sql('DELETE FROM pgwarden_decisions WHERE id = $1', [ids[4]]);
    const r = await verifyInstance(reader.pool, 'v-del', undefined);
    expect(r.problem?.kind).toBe('deleted');
    expect(r.problem?.chainSeq).toBe(Number(row?.chain_seq));
  });

  it('reports the newest records deleted, against the delivered head', async () => {
    const ids = await chain('v-tail', 6);
    await db.sql('DELETE FROM pgwarden_decisions WHERE id = $1', [ids[5]]);
    const r = await verifyInstance(reader.pool, 'v-tail', undefined);
    expect(r.problem?.kind).toBe('deleted');
    expect(r.problem?.message).toContain('at the end');
  });

  it('reports two records swapped in the chain as reordered', async () => {
    const ids = await chain('v-order', 10);
    const rows = await db.sql<{ id: string; chain_seq: string }>(
      'SELECT id, chain_seq FROM pgwarden_decisions WHERE id = ANY($1) ORDER BY chain_seq',
      [[ids[3], ids[7]]],
    );
    const [a, b] = rows;
    // Swap the positions through a free value; the bodies and hashes stay intact.
    await db.sql(`UPDATE pgwarden_decisions SET chain_seq = -1 WHERE id = $1`, [a?.id]);
    await db.sql(`UPDATE pgwarden_decisions SET chain_seq = $2 WHERE id = $1`, [b?.id, a?.chain_seq]);
    await db.sql(`UPDATE pgwarden_decisions SET chain_seq = $2 WHERE id = $1`, [a?.id, b?.chain_seq]);
    const r = await verifyInstance(reader.pool, 'v-order', undefined);
    expect(r.problem).toMatchObject({ kind: 'reordered', recordId: ids[7], chainSeq: Number(a?.chain_seq) });
  });

  it('keeps the chain verifiable after retention deletes old records', async () => {
    const old = Date.now() - 10 * 86_400_000;
    const ids = await chain('v-ret', 10, (i) => new Date(i < 6 ? old + i : Date.now()).toISOString());
    await applyRetention(reader.pool, new Date(Date.now() - 86_400_000));
    const left = await db.sql<{ id: string }>(
      `SELECT id FROM pgwarden_decisions WHERE instance_id = 'v-ret'`,
    );
    expect(left.map((r) => r.id).sort()).toEqual(ids.slice(6).sort());
    const r = await verifyInstance(reader.pool, 'v-ret', undefined);
    expect(r).toMatchObject({ ok: true, checked: 8 });
  });
});

/** The chain's positions and links of one decision row (and of its outcome, in the same row). */
async function rowOf(id: string): Promise<{
  chain_seq: string;
  prev_hash: string;
  outcome_chain_seq: string;
  outcome_hash: string;
  outcome_mac: string;
}> {
  const [row] = await db.sql<{
    chain_seq: string;
    prev_hash: string;
    outcome_chain_seq: string;
    outcome_hash: string;
    outcome_mac: string;
  }>(
    'SELECT chain_seq, prev_hash, outcome_chain_seq, outcome_hash, outcome_mac FROM pgwarden_decisions WHERE id = $1',
    [id],
  );
  if (!row) throw new Error(`no row ${id}`);
  return row;
}

describe('audit verify: rows and bookkeeping outside the chain (store writers without the key)', () => {
  it('reports a decision inserted at chain seq 0 (below where verify starts) as inserted', async () => {
    const ids = await chain('v-ins0', 5, undefined, { key: KEY });
    const fake = await insertCopy(ids[2] as string, 0);
    for (const key of [KEY, undefined]) {
      const r = await verifyInstance(reader.pool, 'v-ins0', key);
      expect(r.problem).toMatchObject({ kind: 'inserted', recordId: fake });
    }
  });

  it('accepts a decision retention keeps below the anchor for its late outcome, and still checks its hash', async () => {
    const old = new Date(Date.now() - 10 * 86_400_000);
    const log = await startDecisionLog(store.config({ hmacKey: KEY }), {
      instanceId: 'v-keep',
      upstreamUrl: db.url,
      logger,
    });
    const rec = (seq: number, time: Date): ReturnType<typeof sampleRecord> =>
      sampleRecord({ instanceId: 'v-keep', sessionId: 'v-keep-s', seq, time: time.toISOString() });
    for (let i = 0; i < 4; i++) {
      const r = rec(i, new Date(old.getTime() + i));
      log.decide(r);
      log.complete(sampleOutcome(r));
    }
    const long = rec(4, new Date(old.getTime() + 10));
    log.decide(long);
    for (let i = 5; i < 8; i++) {
      const r = rec(i, new Date());
      log.decide(r);
      log.complete(sampleOutcome(r));
    }
    log.complete(sampleOutcome(long, { rows: 9 })); // a long statement: its outcome comes last
    expect(await log.flushToStore()).toBe(true);
    await log.close();
    await applyRetention(reader.pool, new Date(Date.now() - 86_400_000), KEY);
    const left = await db.sql<{ id: string }>(
      `SELECT id FROM pgwarden_decisions WHERE instance_id = 'v-keep'`,
    );
    expect(left.map((r) => r.id)).toContain(long.id);
    const ok = await verifyInstance(reader.pool, 'v-keep', KEY, { retentionDays: 1 });
    expect(ok).toMatchObject({ ok: true });
    expect(Number((await rowOf(long.id)).chain_seq)).toBeLessThan(ok.firstSeq);
    // Below the anchor, but not beyond reach: an edit of the kept decision is still found.
    await db.sql(`UPDATE pgwarden_decisions SET body = replace(body, 'alice@', 'mallory@') WHERE id = $1`, [
      long.id,
    ]);
    expect((await verifyInstance(reader.pool, 'v-keep', KEY)).problem).toMatchObject({
      kind: 'altered',
      recordId: long.id,
    });
    // Nor is its deletion: its outcome, in the chain, has lost its decision (red team, round 26).
    // Delivered with it, the outcome shares its row, and goes with it: the chain's end is missing.
    await db.sql('DELETE FROM pgwarden_decisions WHERE id = $1', [long.id]);
    expect((await verifyInstance(reader.pool, 'v-keep', KEY)).problem).toMatchObject({ kind: 'deleted' });
  });

  it('reports a decision kept below the anchor deleted while its outcome, delivered later, stays (red team, round 26)', async () => {
    const old = new Date(Date.now() - 10 * 86_400_000);
    const log = await startDecisionLog(store.config({ hmacKey: KEY }), {
      instanceId: 'v-orphan',
      upstreamUrl: db.url,
      logger,
    });
    const rec = (seq: number, time: Date): ReturnType<typeof sampleRecord> =>
      sampleRecord({ instanceId: 'v-orphan', sessionId: 'v-orphan-s', seq, time: time.toISOString() });
    const long = rec(0, old);
    log.decide(long);
    for (let i = 1; i < 4; i++) {
      const r = rec(i, new Date());
      log.decide(r);
      log.complete(sampleOutcome(r));
    }
    // The decision reaches the store before its outcome: the outcome gets a row of its own.
    expect(await log.flushToStore()).toBe(true);
    log.complete(sampleOutcome(long, { rows: 9 }));
    expect(await log.flushToStore()).toBe(true);
    await log.close();
    await applyRetention(reader.pool, new Date(Date.now() - 86_400_000), KEY);
    expect((await verifyInstance(reader.pool, 'v-orphan', KEY)).ok).toBe(true);
    await db.sql('DELETE FROM pgwarden_decisions WHERE id = $1', [long.id]);
    expect((await verifyInstance(reader.pool, 'v-orphan', KEY)).problem).toMatchObject({
      kind: 'deleted',
      recordId: long.id,
    });
  });

  it('retention does not walk on from an anchor moved by hand: it would key a new one over the gap (red team, round 26)', async () => {
    const old = Date.now() - 10 * 86_400_000;
    const ids = await chain(
      'v-anchor-moved',
      10,
      (i) => new Date(i < 3 ? old + i : Date.now()).toISOString(),
      {
        key: KEY,
      },
    );
    await applyRetention(reader.pool, new Date(Date.now() - 5 * 86_400_000), KEY);
    // By hand: the anchor moved past recent entries, which are deleted; its MAC cannot be made.
    const target = await rowOf(ids[6]!);
    await db.sql(
      `UPDATE pgwarden_chain_anchors SET chain_seq = $1, prev_hash = $2, mac = 'bogus' WHERE instance_id = 'v-anchor-moved'`,
      [target.chain_seq, target.prev_hash],
    );
    await db.sql(
      `DELETE FROM pgwarden_decisions WHERE instance_id = 'v-anchor-moved' AND chain_seq < $1 AND id = ANY($2)`,
      [target.chain_seq, ids.slice(3, 6)],
    );
    expect((await verifyInstance(reader.pool, 'v-anchor-moved', KEY)).problem?.kind).toBe('forged');
    // A later retention run (everything before now) leaves the forged anchor for verify to report.
    await applyRetention(reader.pool, new Date(), KEY);
    expect((await verifyInstance(reader.pool, 'v-anchor-moved', KEY)).problem?.kind).toBe('forged');
  });

  it('reports an outcome added to a denied statement (below the chain, or without a position) as inserted', async () => {
    const ids = await chain('v-outc', 5, undefined, { key: KEY, deny: (i) => i === 2 });
    const denied = ids[2] as string;
    const body = JSON.stringify({
      v: 1,
      recordId: denied,
      sessionId: 'v-outc-s',
      time: new Date().toISOString(),
      command: 'DELETE 40',
      rows: 40,
      upstreamMicros: 900,
      sqlstate: null,
      errorMessage: null,
    });
    const hash = linkHash(GENESIS, body);
    await db.sql(
      `INSERT INTO pgwarden_outcomes VALUES ($1, 'v-outc', -1, $2, $3, $4, $5, now(), 'DELETE 40', 40, 900, NULL)`,
      [denied, GENESIS, hash, linkMac('guess', hash), body],
    );
    expect((await verifyInstance(reader.pool, 'v-outc', KEY)).problem).toMatchObject({
      kind: 'inserted',
      recordId: denied,
    });
    await db.sql(`DELETE FROM pgwarden_outcomes WHERE record_id = $1`, [denied]);
    expect((await verifyInstance(reader.pool, 'v-outc', KEY)).ok).toBe(true);
    await db.sql(
      `UPDATE pgwarden_decisions SET outcome_body = $2, command = 'DELETE 40', rows = 40 WHERE id = $1`,
      [denied, body],
    );
    expect((await verifyInstance(reader.pool, 'v-outc', KEY)).problem).toMatchObject({
      kind: 'inserted',
      recordId: denied,
    });
  });

  it('reports the newest entries deleted with the head moved back to the new last link', async () => {
    const ids = await chain('v-head', 6, undefined, { key: KEY });
    const last = await rowOf(ids[4] as string);
    await db.sql('DELETE FROM pgwarden_decisions WHERE id = $1', [ids[5]]);
    await db.sql(`UPDATE pgwarden_chain_heads SET chain_seq = $1, hash = $2 WHERE instance_id = 'v-head'`, [
      last.outcome_chain_seq,
      last.outcome_hash,
    ]);
    expect((await verifyInstance(reader.pool, 'v-head', KEY)).problem?.kind).toBe('forged');
    // The link's own MAC does not fit a head.
    await db.sql(`UPDATE pgwarden_chain_heads SET mac = $1 WHERE instance_id = 'v-head'`, [last.outcome_mac]);
    expect((await verifyInstance(reader.pool, 'v-head', KEY)).problem?.kind).toBe('forged');
    // A head without a MAC (as written before heads were keyed) is not taken on trust.
    await db.sql(`UPDATE pgwarden_chain_heads SET mac = NULL WHERE instance_id = 'v-head'`);
    expect((await verifyInstance(reader.pool, 'v-head', KEY)).problem?.kind).toBe('unauthenticated');
  });

  it('reports entries whose head was deleted', async () => {
    const ids = await chain('v-nohead', 4);
    await db.sql('DELETE FROM pgwarden_decisions WHERE id = $1', [ids[3]]);
    await db.sql(`DELETE FROM pgwarden_chain_heads WHERE instance_id = 'v-nohead'`);
    const r = await verifyInstance(reader.pool, 'v-nohead', undefined);
    expect(r.problem?.kind).toBe('deleted');
    expect(r.problem?.message).toContain('no delivered head');
  });

  it('reports the oldest entries deleted behind an anchor added by hand', async () => {
    const ids = await chain('v-anchor', 6, undefined, { key: KEY });
    const first = await rowOf(ids[2] as string);
    await db.sql('DELETE FROM pgwarden_decisions WHERE id = ANY($1)', [[ids[0], ids[1]]]);
    await db.sql(
      `INSERT INTO pgwarden_chain_anchors (instance_id, chain_seq, prev_hash, cutoff) VALUES ('v-anchor', $1, $2, now())`,
      [first.chain_seq, first.prev_hash],
    );
    expect((await verifyInstance(reader.pool, 'v-anchor', KEY)).problem?.kind).toBe('unauthenticated');
    await db.sql(`UPDATE pgwarden_chain_anchors SET mac = $1 WHERE instance_id = 'v-anchor'`, [
      'ab'.repeat(32),
    ]);
    expect((await verifyInstance(reader.pool, 'v-anchor', KEY)).problem?.kind).toBe('forged');
    // Without a key, an anchor newer than the retention period allows is still reported.
    const r = await verifyInstance(reader.pool, 'v-anchor', undefined, { retentionDays: 90 });
    expect(r.problem?.kind).toBe('deleted');
    expect(r.problem?.message).toContain('retention of 90 days');
    expect(r.anchor).toMatchObject({ chainSeq: Number(first.chain_seq) });
    expect(r.anchor?.cutoff).not.toBeNull();
  });

  it('accepts an anchor moved by retention (keyed, within the retention period)', async () => {
    const old = Date.now() - 10 * 86_400_000;
    await chain('v-ret-key', 8, (i) => new Date(i < 5 ? old + i : Date.now()).toISOString(), { key: KEY });
    await applyRetention(reader.pool, new Date(Date.now() - 5 * 86_400_000), KEY);
    const r = await verifyInstance(reader.pool, 'v-ret-key', KEY, { retentionDays: 5 });
    expect(r).toMatchObject({ ok: true, checked: 6 });
    expect(r.anchor?.cutoff).toBeTruthy();
    // A run that deletes nothing new leaves the anchor (and its MAC) as it was.
    await applyRetention(reader.pool, new Date(Date.now() - 5 * 86_400_000), KEY);
    expect((await verifyInstance(reader.pool, 'v-ret-key', KEY, { retentionDays: 5 })).ok).toBe(true);
  });

  it('retention goes by the hashed time: rows backdated in the store are kept, and verify reports them (red team, round 25)', async () => {
    await chain('v-backdate', 8, undefined, { key: KEY });
    const count = async (): Promise<number> =>
      Number(
        (
          await db.sql<{ n: string }>(
            `SELECT count(*) AS n FROM pgwarden_decisions WHERE instance_id = 'v-backdate'`,
          )
        )[0]!.n,
      );
    await db.sql(
      `UPDATE pgwarden_decisions SET time = '2000-01-01' WHERE instance_id = 'v-backdate' AND chain_seq <= 6`,
    );
    await applyRetention(reader.pool, new Date(Date.now() - 90 * 86_400_000), KEY);
    expect(await count()).toBe(8);
    const r = await verifyInstance(reader.pool, 'v-backdate', KEY, { retentionDays: 90 });
    expect(r.problem).toMatchObject({ kind: 'altered', chainSeq: 1 });
    expect(r.problem?.message).toContain('column time');
  });

  it("reports a time edited to 'infinity' as altered instead of failing to read the store", async () => {
    const [id] = await chain('v-infinity', 3);
    await db.sql(`UPDATE pgwarden_decisions SET time = 'infinity' WHERE id = $1`, [id]);
    const r = await verifyInstance(reader.pool, 'v-infinity', undefined);
    expect(r.problem).toMatchObject({ kind: 'altered', recordId: id });
  });

  it('reports a row with no instance or chain position (its NOT NULL dropped) as inserted', async () => {
    const [id] = await chain('v-unchained', 2);
    await db.sql('ALTER TABLE pgwarden_decisions ALTER instance_id DROP NOT NULL');
    const fake = randomUUID();
    try {
      await db.sql(
        `INSERT INTO pgwarden_decisions SELECT $2, NULL, chain_seq, prev_hash, hash, mac, replace(body, id, $2), time,
           kind, session_id, seq, human, agent, tenant, verdict, 'DROP TABLE customers -- by bob', facets
         FROM pgwarden_decisions WHERE id = $1`,
        [id, fake],
      );
      const reports = await verifyAll(reader.pool, undefined);
      expect(reports.find((r) => r.instance === '(none)')).toMatchObject({
        ok: false,
        problem: { kind: 'inserted', recordId: fake },
      });
    } finally {
      await db.sql('DELETE FROM pgwarden_decisions WHERE id = $1', [fake]);
      await db.sql('ALTER TABLE pgwarden_decisions ALTER instance_id SET NOT NULL');
    }
  });

  it('reports an older head put back while its shipper is held up by a lock in the store (red team, round 41)', async () => {
    const token = 'blocked-responder-token-'.padEnd(40, 'x');
    const cfg = store.config({
      hmacKey: KEY,
      api: { tokens: [{ name: 'oncall', token, roles: ['responder'] }] },
    });
    const log = await startDecisionLog(cfg, { instanceId: 'v-blocked', upstreamUrl: db.url, logger });
    const app = await buildApiApp(cfg.api, {
      reader,
      logger,
      hmacKey: KEY,
      deliveredHead: () => log.deliveredHead(1500),
    });
    const decide = (from: number): void => {
      for (let seq = from; seq < from + 3; seq++) {
        const r = sampleRecord({ instanceId: 'v-blocked', sessionId: 'blocked', seq });
        log.decide(r);
        log.complete(sampleOutcome(r));
      }
    };
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      decide(0);
      expect(await log.flushToStore()).toBe(true);
      const [saved] = await db.sql<{ chain_seq: string; hash: string; mac: string }>(
        `SELECT chain_seq, hash, mac FROM pgwarden_chain_heads WHERE instance_id = 'v-blocked'`,
      );
      decide(3);
      expect(await log.flushToStore()).toBe(true);
      await db.sql(`DELETE FROM pgwarden_decisions WHERE instance_id = 'v-blocked' AND chain_seq > $1`, [
        saved!.chain_seq,
      ]);
      await db.sql(
        `UPDATE pgwarden_chain_heads SET chain_seq = $1, hash = $2, mac = $3 WHERE instance_id = 'v-blocked'`,
        [saved!.chain_seq, saved!.hash, saved!.mac],
      );
      // The shipper's next delivery waits on this lock: verify could not compare, and said ok.
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM pgwarden_chain_heads WHERE instance_id = 'v-blocked' FOR UPDATE`);
      decide(6);
      const report = (
        await app.inject({
          url: '/api/v1/verify?instance=v-blocked',
          headers: { authorization: `Bearer ${token}` },
        })
      ).json() as { ok: boolean; instances: { problem: { kind: string } | null }[] };
      expect(report.ok).toBe(false);
      expect(report.instances[0]?.problem).toMatchObject({ kind: 'deleted' });
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await holder.end();
      await app.close();
      await log.close();
    }
  });

  it("a running instance's API verify reports an older head put back over deleted newest entries (red team, round 25)", async () => {
    const token = 'replay-responder-token-'.padEnd(40, 'x');
    const cfg = store.config({
      hmacKey: KEY,
      api: { tokens: [{ name: 'oncall', token, roles: ['responder'] }] },
    });
    const log = await startDecisionLog(cfg, { instanceId: 'v-replay', upstreamUrl: db.url, logger });
    const app = await buildApiApp(cfg.api, {
      reader,
      logger,
      hmacKey: KEY,
      deliveredHead: () => log.deliveredHead(5000),
    });
    const write = async (from: number): Promise<void> => {
      for (let seq = from; seq < from + 3; seq++) {
        const r = sampleRecord({ instanceId: 'v-replay', sessionId: 'replay', seq });
        log.decide(r);
        log.complete(sampleOutcome(r));
      }
      expect(await log.flushToStore()).toBe(true);
    };
    const verifyThroughApi = async () =>
      (
        await app.inject({
          url: '/api/v1/verify?instance=v-replay',
          headers: { authorization: `Bearer ${token}` },
        })
      ).json() as {
        ok: boolean;
        instances: { problem: { kind: string } | null }[];
      };
    try {
      await write(0);
      const [saved] = await db.sql<{ chain_seq: string; hash: string; mac: string }>(
        `SELECT chain_seq, hash, mac FROM pgwarden_chain_heads WHERE instance_id = 'v-replay'`,
      );
      await write(3);
      expect((await verifyThroughApi()).ok).toBe(true);
      // The saved head back, the entries after it gone: the store alone cannot tell ...
      await db.sql(`DELETE FROM pgwarden_decisions WHERE instance_id = 'v-replay' AND chain_seq > $1`, [
        saved!.chain_seq,
      ]);
      await db.sql(`DELETE FROM pgwarden_outcomes WHERE instance_id = 'v-replay' AND chain_seq > $1`, [
        saved!.chain_seq,
      ]);
      await db.sql(
        `UPDATE pgwarden_chain_heads SET chain_seq = $1, hash = $2, mac = $3 WHERE instance_id = 'v-replay'`,
        [saved!.chain_seq, saved!.hash, saved!.mac],
      );
      expect((await verifyInstance(reader.pool, 'v-replay', KEY)).ok).toBe(true);
      // ... the instance that delivered them can.
      const report = await verifyThroughApi();
      expect(report.ok).toBe(false);
      expect(report.instances[0]?.problem).toMatchObject({ kind: 'deleted' });
    } finally {
      await app.close();
      await log.close();
    }
  });

  it('reports an instance whose whole chain was deleted (rows, outcomes, head) as missing', async () => {
    await chain('v-gone', 3, undefined, { key: KEY });
    await chain('v-stays', 3, undefined, { key: KEY });
    for (const t of [
      'pgwarden_decisions',
      'pgwarden_outcomes',
      'pgwarden_chain_heads',
      'pgwarden_chain_anchors',
    ])
      await db.sql(`DELETE FROM ${t} WHERE instance_id = 'v-gone'`);
    const reports = await verifyAll(reader.pool, KEY);
    expect(reports.find((r) => r.instance === 'v-gone')?.problem).toMatchObject({ kind: 'deleted' });
    expect(reports.find((r) => r.instance === 'v-stays')).toMatchObject({ ok: true, checked: 6 });
  });
});
