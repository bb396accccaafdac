import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApiApp } from '../src/api/app.js';
import { startDecisionLog } from '../src/audit/decision-log.js';
import type { DecisionRecord } from '../src/audit/record.js';
import { sampleOutcome, sampleRecord } from '../src/audit/sample-records.js';
import { PAGE_BYTES, type DecisionView } from '../src/audit/store-reader.js';
import { startTestAuditStore, type TestAuditStore } from './support/audit-store.js';

// One agent writes big statements, one responder asks for a page of 1,000 decisions, and the
// process that also runs the proxy read them all at once (1,000 records of 1 MiB statements: a
// gigabyte). Pages now stop at PAGE_BYTES of stored text.
const logger = pino({ level: 'silent' });
const TOKEN = 'responder-token-'.padEnd(40, 'x');
const BIG = 512 * 1024;
const BIG_RECORDS = 24;
let store: TestAuditStore;
let app: FastifyInstance;
const records: DecisionRecord[] = [];

async function get<T>(url: string): Promise<T> {
  const res = await app.inject({ url, headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as T;
}

const stored = (d: DecisionView): number => Buffer.byteLength(JSON.stringify(d));

beforeAll(async () => {
  store = await startTestAuditStore('audit_search_pages');
  const cfg = store.config({ api: { tokens: [{ name: 'oncall', token: TOKEN, roles: ['responder'] }] } });
  const log = await startDecisionLog(cfg, { instanceId: 'pages-1', upstreamUrl: store.db.url, logger });
  const t0 = Date.parse('2026-02-01T00:00:00Z');
  // Big statements and small ones, interleaved in one session.
  for (let seq = 0; seq < BIG_RECORDS * 2; seq++) {
    const big = seq % 2 === 0;
    const r = sampleRecord({
      instanceId: 'pages-1',
      sessionId: 'sess-big',
      seq,
      time: new Date(t0 + seq * 1000).toISOString(),
      sql: big ? `SELECT '${String(seq).padEnd(BIG, 'x')}'` : `SELECT ${seq}`,
    });
    records.push(r);
    log.decide(r);
    log.complete(sampleOutcome(r, { rows: seq }));
  }
  expect(await log.flushToStore()).toBe(true);
  await log.close();
  app = await buildApiApp(cfg.api, { reader: store.reader, logger });
}, 120_000);

afterAll(async () => {
  await app.close();
  await store.close();
});

describe('pages of big decisions', () => {
  it('a search page stops at a few MiB of records, and its cursor goes on without gaps or repeats', async () => {
    const seen: DecisionView[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: { items: DecisionView[]; nextCursor: string | null } = await get(
        `/api/v1/decisions?limit=1000${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(page.items.length).toBeGreaterThan(0);
      // Whatever is under the budget, and one record past it.
      const sizes = page.items.map(stored);
      expect(sizes.slice(0, -1).reduce((a, b) => a + b, 0)).toBeLessThan(PAGE_BYTES);
      seen.push(...page.items);
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 50);
    expect(pages).toBeGreaterThan(2);
    expect(seen.map((d) => d.id)).toEqual(records.map((r) => r.id).reverse());
    expect(seen.every((d) => d.outcome !== null)).toBe(true);
  });

  it('a session page stops at a few MiB of records, and `next` goes on in the session order', async () => {
    const seqs: number[] = [];
    let after: number | null | undefined;
    let pages = 0;
    do {
      const s: { items: DecisionView[]; next: number | null } = await get(
        `/api/v1/sessions/sess-big?limit=1000${after === undefined ? '' : `&after=${after}`}`,
      );
      const sizes = s.items.map(stored);
      expect(sizes.slice(0, -1).reduce((a, b) => a + b, 0)).toBeLessThan(PAGE_BYTES);
      seqs.push(...s.items.map((d) => d.seq as number));
      after = s.next;
      pages++;
    } while (after !== null && pages < 50);
    expect(pages).toBeGreaterThan(2);
    expect(seqs).toEqual(records.map((r) => r.seq));
  });

  it('an export still holds every record whole', async () => {
    const res = await app.inject({
      url: '/api/v1/export?format=ndjson',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.statusCode).toBe(200);
    const lines = res.body.trim().split('\n');
    expect(lines).toHaveLength(records.length);
    const first = JSON.parse(lines[lines.length - 1] ?? '{}') as DecisionView;
    expect(first.sql).toBe(records[0]?.sql);
  });

  it('small records still come a thousand to a page', async () => {
    const page = await get<{ items: DecisionView[]; nextCursor: string | null }>(
      '/api/v1/decisions?limit=1000&q=SELECT%201',
    );
    // The small statements whose text holds "SELECT 1": 1, 11, 13, ... all in one page.
    const want = records.filter((r) => (r.sql ?? '').includes('SELECT 1')).length;
    expect(page.items).toHaveLength(want);
    expect(page.nextCursor).toBeNull();
  });
});
