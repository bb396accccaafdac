import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, seedItemsAndSecrets, type TestDatabase } from './support/db.js';
import { createMemorySink } from './support/memory-sink.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';

let db: TestDatabase;
let px: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase('proxy');
  await seedItemsAndSecrets(db, 100);
  px = await startTestProxy(db, { tables: ['public.items'] });
});
afterAll(async () => {
  await px?.close();
  await db?.drop();
});

async function client(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: await px.url() });
  await c.connect();
  return c;
}

describe('node-postgres through pgwarden', () => {
  it('runs an allowed simple query and a parameterized (extended) query', async () => {
    const c = await client();
    try {
      const simple = await c.query('SELECT count(*)::int AS n FROM items');
      expect(simple.rows).toEqual([{ n: 100 }]);
      const extended = await c.query('SELECT name FROM items WHERE id = $1', [7]);
      expect(extended.rows).toEqual([{ name: 'item 7' }]);
    } finally {
      await c.end();
    }
  });

  it('denies a table not in the rules with 42501 and keeps the session usable', async () => {
    const c = await client();
    try {
      await expect(c.query('SELECT * FROM secrets')).rejects.toMatchObject({ code: '42501' });
      await expect(c.query('SELECT secret FROM secrets WHERE id = $1', [1])).rejects.toMatchObject({
        code: '42501',
      });
      expect((await c.query('SELECT 1 AS one FROM items LIMIT 1')).rows).toEqual([{ one: 1 }]);
    } finally {
      await c.end();
    }
  });

  it('leaves a transaction failed after a denied statement, as Postgres would (simple protocol)', async () => {
    const c = await client();
    try {
      await c.query('BEGIN');
      await expect(c.query('SELECT * FROM secrets')).rejects.toMatchObject({ code: '42501' });
      // The server itself is now in a failed transaction block: it refuses the next statement.
      await expect(c.query('SELECT 1 AS one FROM items LIMIT 1')).rejects.toMatchObject({ code: '25P02' });
      await c.query('ROLLBACK');
      expect((await c.query('SELECT 1 AS one FROM items LIMIT 1')).rows).toEqual([{ one: 1 }]);
    } finally {
      await c.end();
    }
  });

  it('refuses a bad token with 28P01 and the same message whatever the cause', async () => {
    const wrong = new pg.Client({
      connectionString: `postgres://support-bot:not-a-token@127.0.0.1:${px.port}/${db.name}`,
    });
    const expired = new pg.Client({ connectionString: await px.url({ ttlSeconds: -60 }) });
    const errs = await Promise.all([
      wrong.connect().catch((e: unknown) => e),
      expired.connect().catch((e: unknown) => e),
    ]);
    for (const e of errs)
      expect(e).toMatchObject({
        code: '28P01',
        message: 'password authentication failed for user "support-bot"',
      });
  });

  it('records a decision with the originating human for every statement', async () => {
    const c = await client();
    try {
      await c.query("SELECT 'marker-1' AS m FROM items LIMIT 1");
    } finally {
      await c.end();
    }
    const rec = px.sink.records.find((r) => r.sql?.includes('marker-1'));
    expect(rec).toMatchObject({
      human: 'alice@acme.test',
      agent: 'support-bot',
      tenant: 'acme',
      verdict: 'allow',
      kind: 'statement',
    });
    const outcome = px.sink.outcomes.find((o) => o.recordId === rec!.id);
    expect(outcome).toMatchObject({ command: 'SELECT 1', rows: 1, sqlstate: null });
  });
});

describe('a decision log that is off', () => {
  it('gets no records of allowed statements, still gets denials, and statements run as usual', async () => {
    const off = { ...createMemorySink(), off: true };
    const quiet = await startTestProxy(db, { tables: ['public.items'], sink: off });
    const c = new pg.Client({ connectionString: await quiet.url() });
    await c.connect();
    try {
      expect((await c.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 100 }]);
      expect((await c.query('SELECT name FROM items WHERE id = $1', [7])).rows).toEqual([{ name: 'item 7' }]);
      expect(
        (await c.query({ name: 'named', text: 'SELECT id FROM items WHERE id = $1', values: [3] })).rows,
      ).toEqual([{ id: 3 }]);
      await expect(c.query('SELECT * FROM secrets')).rejects.toMatchObject({ code: '42501' });
      expect((await c.query('SELECT 1 AS one FROM items LIMIT 1')).rows).toEqual([{ one: 1 }]);
    } finally {
      await c.end();
      await quiet.close();
    }
    const statements = off.records.filter((r) => r.kind === 'statement');
    expect(statements.map((r) => [r.verdict, r.sql])).toEqual([['deny', 'SELECT * FROM secrets']]);
    expect(off.outcomes).toEqual([]);
  });
});
