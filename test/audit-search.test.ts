import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApiApp } from '../src/api/app.js';
import { auditConfigSchema } from '../src/audit/config.js';
import { startDecisionLog } from '../src/audit/decision-log.js';
import type { DecisionRecord } from '../src/audit/record.js';
import { sampleOutcome, sampleRecord } from '../src/audit/sample-records.js';
import { AuditReader, type DecisionView } from '../src/audit/store-reader.js';
import { startTestAuditStore, type TestAuditStore } from './support/audit-store.js';
import type { TestDatabase } from './support/db.js';

const logger = pino({ level: 'silent' });
const TOKEN = 'responder-token-'.padEnd(40, 'x');
const VIEWER = 'viewer-token-'.padEnd(40, 'y');
let store: TestAuditStore;
let db: TestDatabase;
let reader: AuditReader;
let app: FastifyInstance;
const records: DecisionRecord[] = [];
const T0 = Date.parse('2026-01-01T00:00:00Z');

async function get<T = Record<string, unknown>>(url: string): Promise<T> {
  const res = await app.inject({ url, headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as T;
}

async function search(qs: string): Promise<DecisionView[]> {
  return (await get<{ items: DecisionView[] }>(`/api/v1/decisions?limit=1000&${qs}`)).items;
}

/**
 * Three sessions written interleaved (so chain order is not session order): alice and bob in acme,
 * carol in globex with a cross-tenant attempt. One statement a minute from T0.
 */
function dataset(): void {
  const sessions = [
    { sessionId: 'sess-alice', human: 'alice@acme.test', agent: 'support-bot', tenant: 'acme', n: 12 },
    { sessionId: 'sess-bob', human: 'bob@acme.test', agent: 'report-bot', tenant: 'acme', n: 8 },
    { sessionId: 'sess-carol', human: 'carol@globex.test', agent: 'support-bot', tenant: 'globex', n: 6 },
  ];
  let minute = 0;
  for (let seq = 0; seq < 12; seq++) {
    for (const s of sessions) {
      if (seq >= s.n) continue;
      const verdict = (['allow', 'rewrite', 'deny'] as const)[(seq + s.n) % 3] as
        'allow' | 'rewrite' | 'deny';
      const carolProbe = s.sessionId === 'sess-carol' && seq === 3;
      records.push(
        sampleRecord({
          instanceId: 'search-1',
          sessionId: s.sessionId,
          seq,
          human: s.human,
          agent: s.agent,
          tenant: s.tenant,
          time: new Date(T0 + minute++ * 60_000).toISOString(),
          kind: seq === 0 ? 'session_start' : 'statement',
          verdict: seq === 0 ? null : carolProbe ? 'deny' : verdict,
          sql:
            seq === 0
              ? null
              : carolProbe
                ? `SELECT * FROM orders WHERE org_id = 'acme'`
                : `SELECT ${seq} AS n, '100%' FROM ${seq % 2 ? 'orders' : 'customers'}`,
          ruleIds: seq % 2 ? ['tables.public.orders'] : ['tables.public.customers'],
          tables: seq % 2 ? ['public.orders'] : ['public.customers'],
          flags: carolProbe ? ['cross_tenant_attempt'] : [],
        }),
      );
    }
  }
}

beforeAll(async () => {
  store = await startTestAuditStore('audit_search');
  ({ db, reader } = store);
  const cfg = store.config({
    api: {
      tokens: [
        { name: 'oncall', token: TOKEN, roles: ['responder'] },
        { name: 'viewer', token: VIEWER, roles: ['viewer'] },
      ],
    },
  });
  const log = await startDecisionLog(cfg, { instanceId: 'search-1', upstreamUrl: db.url, logger });
  dataset();
  for (const r of records) {
    log.decide(r);
    if (r.verdict !== 'deny' && r.kind === 'statement') {
      const failed = r.sessionId === 'sess-bob' && r.seq === 7;
      log.complete(
        sampleOutcome(
          r,
          failed
            ? { command: null, rows: null, sqlstate: '57014', errorMessage: 'canceling statement' }
            : { rows: r.seq },
        ),
      );
    }
  }
  expect(await log.flushToStore()).toBe(true);
  await log.close();
  app = await buildApiApp(cfg.api, { reader, logger });
});

afterAll(async () => {
  await app.close();
  await store.close();
});

const count = (f: (r: DecisionRecord) => boolean): number => records.filter(f).length;

describe('decision search API', () => {
  it('filters by human, agent, tenant, verdict, kind, rule, table, session and flag', async () => {
    const cases: [string, (r: DecisionRecord) => boolean][] = [
      ['human=alice%40acme.test', (r) => r.human === 'alice@acme.test'],
      ['agent=support-bot', (r) => r.agent === 'support-bot'],
      ['tenant=globex', (r) => r.tenant === 'globex'],
      ['verdict=deny', (r) => r.verdict === 'deny'],
      ['verdict=rewrite&tenant=acme', (r) => r.verdict === 'rewrite' && r.tenant === 'acme'],
      ['kind=session_start', (r) => r.kind === 'session_start'],
      ['rule=tables.public.orders', (r) => r.ruleIds.includes('tables.public.orders')],
      ['table=public.customers', (r) => r.tables.includes('public.customers')],
      ['session=sess-bob', (r) => r.sessionId === 'sess-bob'],
      ['flag=cross_tenant_attempt', (r) => r.flags.includes('cross_tenant_attempt')],
    ];
    for (const [qs, pred] of cases) {
      const items = await search(qs);
      expect(items.length, qs).toBe(count(pred));
      expect(items.length, qs).toBeGreaterThan(0);
      const byId = new Map(records.map((r) => [r.id, r]));
      for (const it of items) expect(pred(byId.get(it.id) as DecisionRecord), `${qs} ${it.id}`).toBe(true);
    }
  });

  it('filters by time range (from inclusive, to exclusive) and SQL text', async () => {
    const from = new Date(T0 + 5 * 60_000).toISOString();
    const to = new Date(T0 + 10 * 60_000).toISOString();
    const inRange = await search(`from=${from}&to=${to}`);
    expect(inRange.map((d) => d.time).sort()).toEqual(
      records
        .filter((r) => r.time >= from && r.time < to)
        .map((r) => r.time)
        .sort(),
    );
    const q = await search(`q=${encodeURIComponent("ORG_ID = 'acme'")}`);
    expect(q.map((d) => d.human)).toEqual(['carol@globex.test']);
    // LIKE wildcards in the search text are literal.
    expect(await search(`q=${encodeURIComponent('100%')}`)).toHaveLength(
      count((r) => (r.sql ?? '').includes('100%')),
    );
    expect(await search(`q=${encodeURIComponent('1_0')}`)).toHaveLength(0);
  });

  it('pages with a cursor, newest first, without gaps or repeats', async () => {
    const seen: DecisionView[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: { items: DecisionView[]; nextCursor: string | null } = await get(
        `/api/v1/decisions?limit=7${cursor ? `&cursor=${cursor}` : ''}`,
      );
      seen.push(...page.items);
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(Math.ceil(records.length / 7));
    expect(new Set(seen.map((d) => d.id)).size).toBe(records.length);
    const times = seen.map((d) => d.time as string);
    expect(times).toEqual([...times].sort().reverse());
  });

  it('returns one decision with its outcome, and 404 for an unknown id', async () => {
    const r = records.find((x) => x.sessionId === 'sess-alice' && x.seq === 4) as DecisionRecord;
    const d = await get<DecisionView>(`/api/v1/decisions/${r.id}`);
    expect(d).toMatchObject({ id: r.id, sql: r.sql, verdict: r.verdict, chain: { instance: 'search-1' } });
    expect(d.outcome).toMatchObject({ rows: 4 });
    const res = await app.inject({
      url: '/api/v1/decisions/nope',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.statusCode).toBe(404);
  });

  it('replays a session in its own order with verdicts, rewrites, rows and errors', async () => {
    const s = await get<{ items: DecisionView[] }>('/api/v1/sessions/sess-bob');
    expect(s.items.map((d) => d.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(s.items[0]?.kind).toBe('session_start');
    const bob = records.filter((r) => r.sessionId === 'sess-bob');
    expect(s.items.map((d) => d.verdict)).toEqual(bob.map((r) => r.verdict));
    const rewrite = s.items.find((d) => d.verdict === 'rewrite');
    expect(rewrite?.rewrittenSql).toContain('OPERATOR(pg_catalog.=)');
    expect(s.items[7]?.outcome).toMatchObject({ sqlstate: '57014', rows: null });
  });

  it('replays a session a page at a time, so no request reads a whole session (red team, round 43)', async () => {
    const pages: number[][] = [];
    let after: number | null | undefined;
    do {
      const s = await get<{ items: DecisionView[]; next: number | null }>(
        `/api/v1/sessions/sess-bob?limit=3${after === undefined ? '' : `&after=${after}`}`,
      );
      pages.push(s.items.map((d) => d.seq as number));
      after = s.next;
    } while (after !== null && pages.length < 10);
    expect(pages).toEqual([
      [0, 1, 2],
      [3, 4, 5],
      [6, 7],
    ]);
    // Past the end: an empty page, not "no such session".
    expect(await get('/api/v1/sessions/sess-bob?after=7')).toMatchObject({ items: [], next: null });
  });

  it('aggregates by verdict, human, rule and over time', async () => {
    const byVerdict = await get<{ buckets: { key: string | null; count: number }[] }>(
      '/api/v1/aggregates?by=verdict',
    );
    for (const v of ['allow', 'rewrite', 'deny'] as const) {
      expect(byVerdict.buckets.find((b) => b.key === v)?.count).toBe(count((r) => r.verdict === v));
    }
    const byHuman = await get<{ buckets: { key: string; count: number }[] }>(
      '/api/v1/aggregates?by=human&verdict=deny',
    );
    expect(byHuman.buckets.find((b) => b.key === 'carol@globex.test')?.count).toBe(
      count((r) => r.human === 'carol@globex.test' && r.verdict === 'deny'),
    );
    const byRule = await get<{ buckets: { key: string; count: number }[] }>('/api/v1/aggregates?by=rule');
    expect(byRule.buckets.find((b) => b.key === 'tables.public.orders')?.count).toBe(
      count((r) => r.ruleIds.includes('tables.public.orders')),
    );
    const overTime = await get<{ buckets: { bucket: string; allow: number; deny: number }[] }>(
      '/api/v1/aggregates?by=time&interval=minute&human=alice%40acme.test',
    );
    expect(overTime.buckets).toHaveLength(12);
  });

  it('exports NDJSON and CSV', async () => {
    const nd = await app.inject({
      url: '/api/v1/export?format=ndjson&tenant=acme',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(nd.headers['content-type']).toContain('application/x-ndjson');
    const lines = nd.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as DecisionView);
    expect(lines).toHaveLength(count((r) => r.tenant === 'acme'));
    const csv = await app.inject({
      url: '/api/v1/export?format=csv&session=sess-carol',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const rows = csv.body.trim().split('\r\n');
    expect(rows[0]).toMatch(/^time,id,instance,session_id/);
    expect(rows).toHaveLength(1 + 6);
  });

  it('verifies the chain through the API', async () => {
    const v = await get<{ ok: boolean; instances: { instance: string; ok: boolean }[] }>('/api/v1/verify');
    expect(v).toMatchObject({ ok: true, instances: [{ instance: 'search-1', ok: true }] });
  });

  it('runs one verification at a time: the others are asked to retry (429)', async () => {
    const ask = () => app.inject({ url: '/api/v1/verify', headers: { authorization: `Bearer ${TOKEN}` } });
    const answers = await Promise.all([ask(), ask(), ask()]);
    expect(answers.map((a) => a.statusCode)).toEqual([200, 429, 429]);
    expect(answers[1]?.headers['retry-after']).toBe('5');
    expect(answers[1]?.json()).toMatchObject({ error: 'busy' });
    // Once it is done, the next one runs.
    expect((await ask()).statusCode).toBe(200);
  });

  it('needs a responder token and answers bad parameters with 400', async () => {
    expect((await app.inject({ url: '/api/v1/decisions' })).statusCode).toBe(401);
    expect(
      (await app.inject({ url: '/api/v1/decisions', headers: { authorization: `Bearer ${VIEWER}` } }))
        .statusCode,
    ).toBe(403);
    const bad = (url: string) => app.inject({ url, headers: { authorization: `Bearer ${TOKEN}` } });
    expect((await bad('/api/v1/decisions?hmuan=alice')).statusCode).toBe(400);
    expect((await bad('/api/v1/decisions?verdict=maybe')).statusCode).toBe(400);
    expect((await bad('/api/v1/decisions?cursor=garbage')).statusCode).toBe(400);
    expect((await bad('/api/v1/decisions?from=yesterday')).statusCode).toBe(400);
    // Found by the red team: these were 500s and error lines in the log.
    const cursor = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
    expect((await bad(`/api/v1/decisions?cursor=${cursor(['not a time', 'x'])}`)).statusCode).toBe(400);
    expect((await bad('/api/v1/decisions?q=a%00b')).statusCode).toBe(400);
    expect((await bad('/api/v1/decisions/a%00b')).statusCode).toBe(400);
    expect((await bad('/api/v1/sessions/a%00b')).statusCode).toBe(400);
    // The page and the OpenAPI document hold no data and need no token.
    expect((await app.inject({ url: '/' })).statusCode).toBe(200);
  });

  it('answers 503 while the store is unreachable', async () => {
    const down = new AuditReader('postgres://u:p@127.0.0.1:1/none');
    const a = await buildApiApp(
      auditConfigSchema.parse({ api: { tokens: [{ name: 'o', token: TOKEN, roles: ['responder'] }] } }).api,
      {
        reader: down,
        logger,
      },
    );
    const res = await a.inject({ url: '/api/v1/decisions', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.statusCode).toBe(503);
    await a.close();
    await down.close();
  });
});
