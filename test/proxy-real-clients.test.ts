import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, seedItemsAndSecrets, type TestDatabase } from './support/db.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';

const run = promisify(execFile);
let db: TestDatabase;
let px: TestProxy;

/** What pgbench reads at start (its partition check) plus its own tables. */
const pgbenchTables = [
  'public.pgbench_accounts',
  'public.pgbench_branches',
  'public.pgbench_tellers',
  'public.pgbench_history',
  'pg_catalog.pg_class',
  'pg_catalog.pg_namespace',
  'pg_catalog.pg_partitioned_table',
  'pg_catalog.pg_inherits',
  // postgres.js reads array types at connect.
  'pg_catalog.pg_type',
];

beforeAll(async () => {
  db = await createTestDatabase('clients');
  await seedItemsAndSecrets(db, 50);
  await run('pgbench', ['-i', '-s', '1', '-q', db.url], { env: { ...process.env } });
  px = await startTestProxy(db, { tables: ['public.items', ...pgbenchTables] });
});
afterAll(async () => {
  await px?.close();
  await db?.drop();
});

describe('psql (simple protocol)', () => {
  it('runs allowed statements and shows the denial for others', async () => {
    const url = await px.url();
    const ok = await run('psql', [url, '-XAtc', 'SELECT name FROM items WHERE id = 2']);
    expect(ok.stdout.trim()).toBe('item 2');
    const denied = await run('psql', [url, '-XAtc', 'SELECT secret FROM secrets']).catch(
      (e: { stderr: string }) => e,
    );
    expect((denied as { stderr: string }).stderr).toMatch(/ERROR:.*secrets/);
  });

  it('judges a multi-statement query as a whole: one denial and nothing runs', async () => {
    const url = await px.url();
    const before = px.sink.records.length;
    const r = await run('psql', [
      url,
      '-XAtc',
      "SELECT 'first' FROM items LIMIT 1; SELECT secret FROM secrets",
    ]).catch((e: { stderr: string; stdout: string }) => e);
    expect((r as { stdout: string }).stdout).not.toContain('first');
    const recs = px.sink.records.slice(before).filter((x) => x.kind === 'statement');
    expect(recs.map((x) => x.verdict)).toEqual(['deny']);
  });
});

describe('node-postgres', () => {
  it('keeps a transaction in step after a denied statement (extended protocol)', async () => {
    const c = new pg.Client({ connectionString: await px.url() });
    await c.connect();
    try {
      await c.query('BEGIN');
      expect((await c.query('SELECT name FROM items WHERE id = $1', [1])).rows).toEqual([{ name: 'item 1' }]);
      await expect(c.query('SELECT secret FROM secrets WHERE id = $1', [1])).rejects.toMatchObject({
        code: '42501',
      });
      await expect(c.query('SELECT 1 FROM items LIMIT 1')).rejects.toMatchObject({ code: '25P02' });
      await c.query('ROLLBACK');
      expect((await c.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 50 }]);
    } finally {
      await c.end();
    }
  });
});

describe('postgres.js', () => {
  it('uses named prepared statements and pipelines many queries on one connection', async () => {
    const sql = postgres(await px.url(), { max: 1, prepare: true, onnotice: () => {} });
    try {
      const ids = Array.from({ length: 40 }, (_, i) => i + 1);
      const rows = await Promise.all(ids.map((id) => sql`SELECT name FROM items WHERE id = ${id}`));
      expect(rows.map((r) => r[0]?.name)).toEqual(ids.map((id) => `item ${id}`));
      await expect(sql`SELECT secret FROM secrets WHERE id = ${1}`).rejects.toMatchObject({ code: '42501' });
      const again = await sql`SELECT name FROM items WHERE id = ${5}`;
      expect(again[0]?.name).toBe('item 5');
    } finally {
      await sql.end();
    }
  });
});

describe('psycopg2 (libpq from Python)', () => {
  it('runs a parameterized query, and sees the denial as a Python exception with the SQLSTATE', async () => {
    // Debian's python3 with python3-psycopg2 (installed by .ci/run).
    const script = [
      'import sys, psycopg2',
      'c = psycopg2.connect(sys.argv[1])',
      'cur = c.cursor()',
      "cur.execute('SELECT name FROM items WHERE id = %s', (3,))",
      'print(cur.fetchone()[0])',
      'c.rollback()',
      'try:',
      "    cur.execute('SELECT secret FROM secrets')",
      'except psycopg2.Error as e:',
      '    print(e.pgcode)',
    ].join('\n');
    const { stdout } = await run('/usr/bin/python3', ['-c', script, await px.url()]);
    expect(stdout.trim().split('\n')).toEqual(['item 3', '42501']);
  });
});

describe('psycopg 3', () => {
  it('prepares repeated statements on the server, pipelines, and sees a denial with its SQLSTATE', async () => {
    // Debian's python3-psycopg (installed by .ci/run). After prepare_threshold (5) executions
    // psycopg prepares a named statement (_pg3_0, ...) and then only binds and executes it.
    const script = [
      'import sys, psycopg',
      'with psycopg.connect(sys.argv[1], autocommit=True) as c:',
      '    names = [c.execute("SELECT name FROM items WHERE id = %s", (i,)).fetchone()[0] for i in range(1, 9)]',
      '    print(",".join(names))',
      '    with c.pipeline():',
      '        cur = [c.execute("SELECT count(*) FROM items WHERE id <= %s", (n,)) for n in (5, 10, 15)]',
      '    print(",".join(str(x.fetchone()[0]) for x in cur))',
      '    try:',
      '        c.execute("SELECT secret FROM secrets")',
      '    except psycopg.Error as e:',
      '        print(e.sqlstate)',
      '    print(c.execute("SELECT 1").fetchone()[0])',
    ].join('\n');
    const { stdout } = await run('/usr/bin/python3', ['-c', script, await px.url()]);
    expect(stdout.trim().split('\n')).toEqual([
      'item 1,item 2,item 3,item 4,item 5,item 6,item 7,item 8',
      '5,10,15',
      '42501',
      '1',
    ]);
    const prepared = px.sink.records.filter((r) => /^_pg3_\d+$/.test(r.protocol?.statementName ?? ''));
    expect(prepared.map((r) => r.sql)).toContain('SELECT name FROM items WHERE id = $1');
  });
});

describe('pgbench', () => {
  for (const mode of ['simple', 'extended', 'prepared']) {
    it(`-S -M ${mode} completes every transaction through pgwarden`, async () => {
      const token = await px.token();
      const { stdout } = await run(
        'pgbench',
        [
          '-n',
          '-S',
          '-M',
          mode,
          '-c',
          '2',
          '-t',
          '50',
          '-h',
          '127.0.0.1',
          '-p',
          String(px.port),
          '-U',
          'support-bot',
          db.name,
        ],
        { env: { ...process.env, PGPASSWORD: token } },
      );
      expect(stdout).toMatch(/number of transactions actually processed: 100\/100/);
      expect(stdout).toMatch(/number of failed transactions: 0/);
    });
  }
});
