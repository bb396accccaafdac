/**
 * What scoping through a parent costs the server: each statement an agent might send about
 * order_items (scoped through orders) is run as written, directly (no scoping, every tenant's
 * rows), and as pgwarden rewrites it for tenant acme, on the demo schema grown to 20,000 orders and
 * 200,000 items. Server execution time from EXPLAIN ANALYZE, median of several runs, writes rolled
 * back. Not a test: prints a table.
 *   node --import tsx bench/parent-scoped.ts [runs]
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { loadCatalog } from '../src/policy/catalog.js';
import { createPolicyJudge } from '../src/policy/engine.js';
import { loadRules } from '../src/policy/rules-load.js';
import { loadParser } from '../src/sql/parse.js';
import { startEmbeddedPostgres } from '../test/support/embedded.js';
import { judgeContext } from '../test/support/judge-context.js';
import { countArg } from './lib/count-arg.js';

const runs = countArg('usage: node --import tsx bench/parent-scoped.ts [runs (default 5)]', 5);
const server = await startEmbeddedPostgres();
const c = new pg.Client({ connectionString: server.url });
try {
  await c.connect();
  await c.query(readFileSync('src/demo/seed.sql', 'utf8'));
  await c.query(`INSERT INTO orders (org_id, customer_id, total, status)
    SELECT CASE WHEN g % 2 = 0 THEN 'acme' ELSE 'globex' END, 1, g, 'new' FROM generate_series(1, 20000) g`);
  await c.query(`INSERT INTO order_items (order_id, sku, qty)
    SELECT o.id, 'SKU-' || (1 + g % 3), g FROM orders o, generate_series(1, 10) g`);
  await c.query('ANALYZE');
  const one = async (sql: string): Promise<string> => String((await c.query(sql)).rows[0]?.v);
  const order = await one(`SELECT max(id) AS v FROM orders WHERE org_id = 'acme'`);
  const item = await one(`SELECT max(i.id) AS v FROM order_items i WHERE i.order_id = ${order}`);
  const orders = (
    await c.query<{ id: string }>(`SELECT id FROM orders WHERE org_id = 'acme' ORDER BY id DESC LIMIT 300`)
  ).rows.map((r) => r.id);

  await loadParser();
  const judge = createPolicyJudge(await loadRules(['rules']), await loadCatalog(server.url, 'public'), {
    searchPath: 'public',
  });
  const ctx = judgeContext('acme', { human: 'bench', agent: 'bench' });
  const cases: [string, string][] = [
    ['point read by id', `SELECT sku, qty FROM order_items WHERE id = ${item}`],
    ['items of one order', `SELECT sku, qty FROM order_items WHERE order_id = ${order}`],
    ['point update by id', `UPDATE order_items SET qty = qty + 1 WHERE id = ${item}`],
    ['point delete by id', `DELETE FROM order_items WHERE id = ${item}`],
    [
      'UPDATE ... FROM orders',
      `UPDATE order_items i SET qty = 0 FROM orders o WHERE o.id = i.order_id AND o.total = 10`,
    ],
    // Direct, this updates every tenant's rows (twice as many): the ratio understates the cost.
    ['bulk update (qty > 5)', `UPDATE order_items SET qty = qty + 1 WHERE qty > 5`],
    [
      'INSERT of 300 rows',
      `INSERT INTO order_items (order_id, sku, qty) VALUES ${orders.map((o) => `(${o}, 'SKU-9', 1)`).join(', ')}`,
    ],
  ];

  /** Median server execution time in ms; each run in a transaction that is rolled back. */
  const executionMs = async (sql: string): Promise<number> => {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      await c.query('BEGIN');
      const plan = await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, TIMING OFF) ${sql}`);
      await c.query('ROLLBACK');
      const line = plan.rows.map((r) => r['QUERY PLAN']).find((l) => l.startsWith('Execution Time'));
      times.push(Number(/([\d.]+) ms/.exec(line ?? '')?.[1]));
    }
    return times.sort((a, b) => a - b)[Math.floor(times.length / 2)] ?? NaN;
  };

  const rows: string[] = [];
  for (const [name, sql] of cases) {
    const v = judge.judge(sql, ctx).verdict;
    if (v.kind === 'deny') throw new Error(`${name}: denied: ${v.message}`);
    const direct = await executionMs(sql);
    const scoped = await executionMs(v.kind === 'rewrite' ? v.sql : sql);
    rows.push(`| ${name} | ${direct.toFixed(2)} | ${scoped.toFixed(2)} | ${(scoped / direct).toFixed(1)}x |`);
  }
  console.log(
    [
      `order_items scoped through orders: 20,030 orders (half acme), ${await one('SELECT count(*) AS v FROM order_items')} items; median of ${runs} runs`,
      '',
      '| statement | direct, all tenants (ms) | pgwarden, acme (ms) | pgwarden / direct |',
      '| --- | ---: | ---: | ---: |',
      ...rows,
    ].join('\n'),
  );
} finally {
  await c.end().catch(() => {});
  await server.destroy();
}
