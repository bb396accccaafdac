import { readFileSync } from 'node:fs';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCatalog } from '../src/policy/catalog.js';
import { createReloadableJudge, type ReloadableJudge } from '../src/policy/reloadable.js';
import type { JudgeContext } from '../src/policy/verdict.js';
import { loadParser } from '../src/sql/parse.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';
import { RawClient, errorOf } from './support/raw-client.js';

/**
 * Long statements are judged on the judge thread: one agent's long statement must not hold up
 * every other session for as long as judging it takes.
 */
let db: TestDatabase;
let policy: ReloadableJudge;
let proxy: TestProxy;

/**
 * A multi-row INSERT into parent-scoped order_items whose keys are expressions (a cast), so every
 * row gets a guard of its own (literal keys are checked once for the statement): judging takes ~1 s.
 */
function bulkInsert(orderId: (i: number) => number, rows = 3000, tag = 'BULK'): string {
  const values = Array.from({ length: rows }, (_, i) => `(${orderId(i)}::bigint, '${tag}-${i}', 1)`);
  return `INSERT INTO order_items (order_id, sku, qty) VALUES ${values.join(', ')}`;
}

async function rowsTagged(tag: string): Promise<number> {
  const r = await db.sql<{ n: number }>(
    `SELECT count(*)::int AS n FROM order_items WHERE sku LIKE '${tag}-%'`,
  );
  return r[0]!.n;
}

/** A proxy whose judge counts where statements are judged: on the event loop, or on a thread. */
async function countingProxy(): Promise<{
  counts: { onEventLoop: number; onThread: number };
  p: TestProxy;
  c: pg.Client;
}> {
  const counts = { onEventLoop: 0, onThread: 0 };
  const counting = {
    ...policy.judge,
    judge: (sql: string, ctx: JudgeContext) => {
      counts.onEventLoop++;
      return policy.judge.judge(sql, ctx);
    },
    judgeOffThread: (sql: string, ctx: JudgeContext) => {
      counts.onThread++;
      return policy.judge.judgeOffThread!(sql, ctx);
    },
  };
  const p = await startTestProxy(db, { judge: counting });
  const c = new pg.Client({ connectionString: await p.url() });
  await c.connect();
  return { counts, p, c };
}

beforeAll(async () => {
  await loadParser();
  db = await createTestDatabase('judge_thread');
  await db.sql(readFileSync('src/demo/seed.sql', 'utf8'));
  policy = await createReloadableJudge({
    rulesPaths: ['rules'],
    loadCatalog: () => loadCatalog(db.url, 'public'),
    searchPath: 'public',
    offThread: true,
    // Judging these statements takes seconds on a loaded machine; the limit has its own tests.
    judgeTimeoutMs: 60_000,
  });
  proxy = await startTestProxy(db, { judge: policy.judge });
});
afterAll(async () => {
  await proxy?.close();
  await policy?.close();
  await db?.drop();
});

describe('long statements are judged off the event loop', () => {
  it("another agent's session logs in and is served while a long statement is being judged", async () => {
    const a = await RawClient.connect(proxy.port);
    try {
      await a.login('support-bot', db.name, await proxy.token());
      const warm = new pg.Client({
        connectionString: await proxy.url({ tenant: 'globex', human: 'bob@globex.test' }),
      });
      await warm.connect();
      await warm.query('SELECT count(*)::int AS n FROM orders');
      await warm.end();
      // Acme's orders are 1 to 18.
      a.send(serialize.query(bulkInsert((i) => 1 + (i % 18))));
      // The other session needs the event loop to log in and to be judged: judged on the event
      // loop, the long statement would be decided (and recorded) first.
      const b = new pg.Client({
        connectionString: await proxy.url({ tenant: 'globex', human: 'bob@globex.test' }),
      });
      await b.connect();
      // A statement the caches hold (judged once before, below) needs no judging at all.
      const r = await b.query('SELECT count(*)::int AS n FROM orders');
      expect(r.rows).toEqual([{ n: 12 }]);
      await b.end();
      // Judging and running 3,000 guarded rows takes seconds on a loaded machine.
      const answer = await a.untilReady(60_000);
      expect(answer.map((m) => m.code)).toEqual(['C', 'Z']);
      const sqls = proxy.sink.records.filter((x) => x.kind === 'statement').map((x) => x.sql ?? '');
      const bulkAt = sqls.findIndex((s) => s.startsWith('INSERT INTO order_items'));
      const otherAt = sqls.lastIndexOf('SELECT count(*)::int AS n FROM orders');
      expect(otherAt).toBeGreaterThanOrEqual(0);
      expect(bulkAt).toBeGreaterThan(otherAt);
      expect(await rowsTagged('BULK')).toBe(3000);
    } finally {
      a.close();
    }
  });

  it("another tenant's new statement is judged while one tenant's long statement is (limits.judgeThreadCount)", async () => {
    // The attack (red team F3): one agent sends statements slow to judge, one after another. With
    // one judge thread every other tenant's statements the caches do not hold waited behind each.
    const a = await RawClient.connect(proxy.port);
    const b = new pg.Client({
      connectionString: await proxy.url({ tenant: 'globex', human: 'bob@globex.test' }),
    });
    try {
      await a.login('support-bot', db.name, await proxy.token());
      await b.connect();
      // Both threads started (b's statement comes while a's keeps the first busy), so only
      // judging is compared.
      a.send(serialize.query(bulkInsert((i) => 1 + (i % 18), 300, 'WARM')));
      await Promise.all([a.untilReady(30_000), b.query('SELECT 1 AS warm_b')]);
      a.send(serialize.query(bulkInsert((i) => 1 + (i % 18), 4000, 'POOL')));
      // Not a statement the caches hold: it needs a judge thread of its own.
      const r = await b.query('SELECT count(*)::int AS pool_probe FROM orders WHERE id > 0');
      expect(r.rows).toEqual([{ pool_probe: 12 }]);
      // Answered while the long statement was still being judged: it has no record yet.
      const decided = () =>
        proxy.sink.records.some((x) => x.kind === 'statement' && (x.sql ?? '').includes("'POOL-0'"));
      expect(decided()).toBe(false);
      expect((await a.untilReady(60_000)).map((m) => m.code)).toEqual(['C', 'Z']);
      expect(decided()).toBe(true);
      expect(await rowsTagged('POOL')).toBe(4000);
    } finally {
      a.close();
      await b.end();
    }
  });

  it('judged on the event loop, a pipeline of many short statements, each judged in milliseconds, lets other sessions in between', async () => {
    // Every statement a new shape (so none is a cache hit) and under judgeOffThreadBytes, so
    // judged on the event loop: 150 INSERTs into parent-scoped order_items of 1 to 50 guarded
    // rows, in three column orders.
    const forms = [
      (i: number) => `(1, 'PIPE-${i}', 1)`,
      (i: number) => `('PIPE-${i}', 1, 1)`,
      (i: number) => `(1, 1, 'PIPE-${i}')`,
    ];
    const heads = ['(order_id, sku, qty)', '(sku, order_id, qty)', '(order_id, qty, sku)'];
    const statements: string[] = [];
    for (let f = 0; f < 3; f++)
      for (let rows = 1; rows <= 50; rows++)
        statements.push(
          `INSERT INTO order_items ${heads[f]!} VALUES ${Array.from({ length: rows }, (_, i) => forms[f]!(i)).join(',')}`,
        );
    const proxy = await startTestProxy(db, {
      judge: policy.judge,
      config: { limits: { judgeOffThreadBytes: 4096 } },
    });
    expect(Math.max(...statements.map((x) => x.length))).toBeLessThanOrEqual(
      proxy.config.limits.judgeOffThreadBytes,
    );
    const a = await RawClient.connect(proxy.port);
    try {
      await a.login('support-bot', db.name, await proxy.token());
      a.send(Buffer.concat(statements.map((x) => serialize.query(x))));
      const b = new pg.Client({
        connectionString: await proxy.url({ tenant: 'globex', human: 'bob@globex.test' }),
      });
      await b.connect();
      await b.query('SELECT count(*)::int AS pipe_probe FROM orders');
      await b.end();
      for (let i = 0; i < statements.length; i++) expect((await a.untilReady(60_000)).at(-2)?.code).toBe('C');
      const sqls = proxy.sink.records.filter((x) => x.kind === 'statement').map((x) => x.sql ?? '');
      const probeAt = sqls.indexOf('SELECT count(*)::int AS pipe_probe FROM orders');
      const lastAt = sqls.lastIndexOf(statements.at(-1)!);
      expect(probeAt).toBeGreaterThanOrEqual(0);
      expect(lastAt).toBeGreaterThan(probeAt);
      expect(await rowsTagged('PIPE')).toBe(3 * ((50 * 51) / 2));
    } finally {
      a.close();
      await proxy.close();
    }
  });

  it('judges every statement the caches do not hold on the thread, and remembers it', async () => {
    // The attack this answers: agents sending new 1 KB statements without pause kept the event
    // loop judging, and every other session's SELECT 1 waited hundreds of milliseconds.
    const { counts, p, c } = await countingProxy();
    try {
      const shapes = Array.from(
        { length: 20 },
        (_, i) => `SELECT id AS c${i}, total FROM orders WHERE id = 1`,
      );
      for (const sql of shapes) expect((await c.query(sql)).rowCount).toBe(1);
      expect([counts.onEventLoop, counts.onThread]).toEqual([0, 20]);
      // The benign look-alike: statements seen before (and other literals of their shape) are
      // answered from the proxy's own caches, with no trip to the thread.
      for (const sql of shapes) await c.query(sql);
      for (const sql of shapes) await c.query(sql.replace('id = 1', 'id = 2'));
      await c.query({ text: 'SELECT id FROM orders WHERE id = $1', values: [3] });
      await c.query({ text: 'SELECT id FROM orders WHERE id = $1', values: [4] });
      expect([counts.onEventLoop, counts.onThread]).toEqual([0, 21]);
    } finally {
      await c.end();
      await p.close();
    }
  });

  it('records only the head and length of a statement or portal name too long for the server (red team, round 12)', async () => {
    // The attack: a Parse named with 15 MiB and the text SELECT 1 was refused, but its record kept
    // the whole name: 15 MiB of NDJSON and spool per message.
    const name = `n${'x'.repeat(1024 * 1024)}`;
    const c = await RawClient.connect(proxy.port);
    try {
      await c.login('support-bot', db.name, await proxy.token());
      c.send(
        Buffer.concat([serialize.parse({ name, text: 'SELECT 1 AS long_name_probe' }), serialize.sync()]),
      );
      expect(errorOf((await c.untilReady())[0])).toMatchObject({ code: '42501' });
      c.send(Buffer.concat([serialize.bind({ portal: name, statement: '' }), serialize.sync()]));
      expect(errorOf((await c.untilReady())[0])).toMatchObject({ code: '42501' });
      const refused = proxy.sink.records.filter((r) => r.reasons.includes('name_too_long'));
      expect(refused.length).toBeGreaterThanOrEqual(2);
      for (const r of refused) {
        const names = [r.protocol?.statementName ?? '', r.protocol?.portalName ?? ''];
        expect(Math.max(...names.map((n) => n.length))).toBeLessThan(300);
        expect(JSON.stringify(r).length).toBeLessThan(5000);
      }
      expect(
        refused.some((r) => r.protocol?.statementName?.endsWith(`... (${name.length} characters)`)),
      ).toBe(true);
    } finally {
      c.close();
    }
  });

  it('looks a long text up by shape on the thread, not on the event loop; by exact text on the loop', async () => {
    // The attack (red team, round 11): long statements of one cached shape, each lexed on the
    // event loop (3 ms per 120 KB), held every other tenant's cached statements.
    const { counts, p, c } = await countingProxy();
    try {
      const ids = (n: number): string => Array.from({ length: 2000 }, (_, i) => n + i).join(', ');
      const long = (n: number): string => `SELECT count(*)::int AS n FROM orders WHERE id IN (${ids(n)})`;
      expect(long(1).length).toBeGreaterThan(8192);
      await c.query(long(1));
      expect(counts.onThread).toBe(1);
      // The same text: found on the event loop.
      await c.query(long(1));
      expect(counts.onThread).toBe(1);
      // Another text of the same shape: looked up on the thread (where the shape cache answers).
      await c.query(long(5000));
      expect(counts.onThread).toBe(2);
      // The look-alike: short texts of one shape are still found on the event loop.
      await c.query('SELECT count(*)::int AS n FROM orders WHERE id IN (1, 2)');
      await c.query('SELECT count(*)::int AS n FROM orders WHERE id IN (3, 4)');
      expect(counts.onThread).toBe(3);
    } finally {
      await c.end();
      await p.close();
    }
  });

  it("keeps the order of a session's messages around the long one, in both protocols", async () => {
    const c = new pg.Client({ connectionString: await proxy.url() });
    await c.connect();
    try {
      // Simple protocol: the long INSERT and the query after it, pipelined by the client.
      const [ins, count] = await Promise.all([
        c.query(bulkInsert((i) => 1 + (i % 18), 500, 'SIMPLE')),
        c.query("SELECT count(*)::int AS n FROM order_items WHERE sku LIKE 'SIMPLE-%'"),
      ]);
      expect(ins.rowCount).toBe(500);
      expect(count.rows).toEqual([{ n: 500 }]);
      // Extended protocol: a long Parse with a parameter.
      const sql = `${bulkInsert((i) => 1 + (i % 18), 499, 'EXT')}, ($1, 'EXT-last', 1)`;
      expect((await c.query(sql, [2])).rowCount).toBe(500);
      expect(await rowsTagged('EXT')).toBe(500);
    } finally {
      await c.end();
    }
  });

  it("judges by the same rules: a long INSERT naming another tenant's order is refused whole", async () => {
    const c = new pg.Client({ connectionString: await proxy.url() });
    await c.connect();
    try {
      // Order 20 is globex's, in the middle of acme's.
      const sql = bulkInsert((i) => (i === 250 ? 20 : 1 + (i % 18)), 500, 'CROSS');
      await expect(c.query(sql)).rejects.toMatchObject({
        message: expect.stringContaining('must reference a row of public.orders in tenant acme'),
      });
      expect(await rowsTagged('CROSS')).toBe(0);
      // The session goes on.
      expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await c.end();
    }
  });

  it('refuses a statement over limits.maxQueryBytes without judging it anywhere', async () => {
    const c = await RawClient.connect(proxy.port);
    try {
      await c.login('support-bot', db.name, await proxy.token());
      c.send(serialize.query(bulkInsert((i) => 1 + (i % 18), 8000, 'HUGE')));
      const answer = await c.untilReady();
      expect(errorOf(answer[0])).toMatchObject({ code: '54000' });
      expect(await rowsTagged('HUGE')).toBe(0);
    } finally {
      c.close();
    }
  });

  it('records only the head and length of a text too long to judge, in both protocols (red team, round 11)', async () => {
    // The attack: 8 MiB texts, refused, were recorded whole; a few a second from one session took
    // the proxy past 1 GB and grew the NDJSON by 30 MiB a second.
    const huge = `SELECT 'é${'x'.repeat(8 * 1024 * 1024)}' AS big`;
    const c = await RawClient.connect(proxy.port);
    try {
      await c.login('support-bot', db.name, await proxy.token());
      c.send(serialize.query(huge));
      expect(errorOf((await c.untilReady())[0])).toMatchObject({ code: '54000' });
      c.send(
        Buffer.concat([
          serialize.parse({ name: 'big', text: huge }),
          serialize.bind({ statement: 'big' }),
          serialize.execute({}),
          serialize.sync(),
        ]),
      );
      const answer = await c.untilReady();
      expect(errorOf(answer[0])).toMatchObject({ code: '54000' });
      expect(answer.map((m) => m.code)).toEqual(['E', 'Z']);
      const refused = proxy.sink.records.filter(
        (r) => r.error?.code === 'PGW_MESSAGE_TOO_LARGE' && r.sql?.startsWith("SELECT 'é"),
      );
      expect(refused.map((r) => r.protocol)).toEqual([
        { mode: 'simple' },
        { mode: 'extended', statementName: 'big' },
      ]);
      for (const r of refused) {
        expect(r.sql!.length).toBeLessThan(1100);
        expect(r.sql).toMatch(/^SELECT 'éx+ \[pgwarden: 8388626 bytes in all, not recorded\]$/);
      }
      // The look-alike: a long text within the limit is judged, run and recorded whole.
      const long = `SELECT '${'y'.repeat(100_000)}' AS fits`;
      c.send(serialize.query(long));
      expect((await c.untilReady()).map((m) => m.code)).toEqual(['T', 'D', 'C', 'Z']);
      expect(proxy.sink.records.some((r) => r.sql === long)).toBe(true);
    } finally {
      c.close();
    }
  });

  it("a statement that exhausts the parser's stack is refused and its thread replaced; the parser keeps serving everyone (red team, round 45)", async () => {
    // Each one left part of the parser's stack behind: after eight, every statement not in the
    // caches, of every tenant, failed with "memory access out of bounds" until a restart.
    const sum = (seed: number): string => `SELECT ${seed}${'+1'.repeat(30_000)}`;
    const acme = new pg.Client({ connectionString: await proxy.url({ tenant: 'acme' }) });
    const globex = new pg.Client({ connectionString: await proxy.url({ tenant: 'globex' }) });
    await acme.connect();
    await globex.connect();
    try {
      for (let i = 0; i < 12; i++) {
        await expect(acme.query(sum(i))).rejects.toMatchObject({
          code: '54001',
          message: expect.stringContaining('deeper than the SQL parser can read'),
        });
        // A statement no cache holds, from another tenant, right after.
        const { rows } = await globex.query(
          `SELECT ${i} + 1 AS n, count(*)::int AS c FROM products WHERE id > ${i}`,
        );
        expect(rows[0]).toMatchObject({ n: i + 1 });
      }
      // Refusals of the parser's failure are not remembered: the same text is judged again.
      await expect(acme.query(sum(0))).rejects.toMatchObject({ code: '54001' });
      // The look-alike: a sum of hundreds of terms is read, judged and run.
      expect((await acme.query(`SELECT 0${'+1'.repeat(300)} AS n`)).rows).toEqual([{ n: 300 }]);
    } finally {
      await acme.end();
      await globex.end();
    }
  }, 120_000);
});
