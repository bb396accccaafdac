import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadParser } from '../src/sql/parse.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { startDemoRulesProxy, withPgClient, type TestProxy } from './support/proxy.js';

/**
 * Operators a database defines outside pg_catalog under the names of built-in ones. The server
 * finds an operator by name along the search path, also where the statement writes none (red
 * team, round 54): such a `=` ran, as pgwarden's role, for a simple CASE, BETWEEN and JOIN USING.
 */
let db: TestDatabase;
let proxy: TestProxy;
let url: string;

beforeAll(async () => {
  await loadParser();
  db = await createTestDatabase('user_operators');
  await db.sql(readFileSync('src/demo/seed.sql', 'utf8'));
  // Each run of the operators' function leaves a row: what a helper reading every tenant's data
  // (or anything else its owner may do) would do unseen.
  await db.sql(`
    CREATE TABLE public.operator_runs (n int);
    CREATE FUNCTION public.noting_cmp(text, int) RETURNS boolean LANGUAGE plpgsql
      AS $$ BEGIN INSERT INTO public.operator_runs VALUES (1); RETURN false; END $$;
    CREATE FUNCTION public.noting_json_eq(json, json) RETURNS boolean LANGUAGE plpgsql
      AS $$ BEGIN INSERT INTO public.operator_runs VALUES (1); RETURN false; END $$;
    CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = int, FUNCTION = public.noting_cmp);
    CREATE OPERATOR public.<= (LEFTARG = text, RIGHTARG = int, FUNCTION = public.noting_cmp);
    CREATE OPERATOR public.>= (LEFTARG = text, RIGHTARG = int, FUNCTION = public.noting_cmp);
    CREATE OPERATOR public.< (LEFTARG = text, RIGHTARG = int, FUNCTION = public.noting_cmp);
    CREATE OPERATOR public.> (LEFTARG = text, RIGHTARG = int, FUNCTION = public.noting_cmp);
    CREATE OPERATOR public.= (LEFTARG = json, RIGHTARG = json, FUNCTION = public.noting_json_eq);
  `);
  ({ proxy, url } = await startDemoRulesProxy(db));
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

const runs = async (): Promise<number> =>
  (await db.sql<{ n: number }>('SELECT count(*)::int AS n FROM public.operator_runs'))[0]!.n;

describe('operators the server finds by name without one written (red team, round 54)', () => {
  const attacks = [
    "SELECT CASE name WHEN 6 THEN 'six' END AS v FROM products",
    'SELECT name BETWEEN 1 AND 9 AS v FROM products',
    'SELECT name NOT BETWEEN SYMMETRIC 9 AND 1 AS v FROM products',
    `SELECT 1 AS v FROM (SELECT '1'::json AS j) a JOIN (SELECT '1'::json AS j) b USING (j)`,
    `SELECT 1 AS v FROM (SELECT '1'::json AS j) a NATURAL JOIN (SELECT '1'::json AS j) b`,
    "UPDATE orders SET status = CASE status WHEN 1 THEN 'x' ELSE status END WHERE id = 1",
  ];

  it("run the database's own operator when sent straight to it (so the test can fail) ...", async () => {
    for (const sql of attacks) {
      const before = await runs();
      await db.sql(sql);
      expect(await runs(), sql).toBeGreaterThan(before);
    }
  });

  it('... and are refused through pgwarden, where the same operator written out is', async () => {
    const before = await runs();
    await withPgClient(url, async (c) => {
      for (const sql of [...attacks, 'SELECT name = 6 AS v FROM products'])
        await expect(c.query(sql), sql).rejects.toMatchObject({
          code: '42501',
          message: expect.stringContaining('also defined outside pg_catalog'),
        });
      // The look-alikes: the comparisons written out with the built-in operators.
      const ok = await c.query<{ v: string }>(
        "SELECT CASE WHEN name OPERATOR(pg_catalog.=) 'Widget' THEN 'w' ELSE 'o' END AS v FROM products ORDER BY id LIMIT 1",
      );
      expect(ok.rows).toEqual([{ v: 'w' }]);
      const joined = await c.query(
        `SELECT 1 AS v FROM (SELECT 1 AS j) a JOIN (SELECT 1 AS j) b ON a.j OPERATOR(pg_catalog.=) b.j`,
      );
      expect(joined.rows).toEqual([{ v: 1 }]);
    });
    expect(await runs()).toBe(before);
  });
});
