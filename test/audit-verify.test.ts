import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDecisionLog } from '../src/audit/decision-log.js';
import { applyRetention } from '../src/audit/retention.js';
import { sampleOutcome, sampleRecord } from '../src/audit/sample-records.js';
import type { AuditReader } from '../src/audit/store-reader.js';
import { verifyInstance } from '../src/audit/verify.js';
import { startTestAuditStore, type TestAuditStore } from './support/audit-store.js';
import type { TestDatabase } from './support/db.js';

const logger = pino({ level: 'silent' });
let store: TestAuditStore;
let db: TestDatabase;
let reader: AuditReader;

/** A fresh instance chain of `n` statements with outcomes; returns decision ids in order. */
async function chain(instanceId: string, n: number, times?: (i: number) => string): Promise<string[]> {
  const log = await startDecisionLog(store.config(), { instanceId, upstreamUrl: db.url, logger });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = sampleRecord({
      instanceId,
      sessionId: `${instanceId}-s`,
      seq: i,
      ...(times ? { time: times(i) } : {}),
    });
    log.decide(r);
    log.complete(sampleOutcome(r, { rows: i }));
    ids.push(r.id);
  }
  await log.flushToStore();
  await log.close();
  expect((await verifyInstance(reader.pool, instanceId, undefined)).ok).toBe(true);
  return ids;
}

beforeAll(async () => {
  store = await startTestAuditStore('audit_verify');
  ({ db, reader } = store);
});

afterAll(() => store.close());

describe('audit verify', () => {
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
