/**
 * Judging cost per statement, cold (parse, analyse, rewrite, deparse, re-parse, check) and cached
 * (exact text, and same shape with other literals). Not a test: prints a table.
 *   node --import tsx bench/judge.ts [iterations]
 */
import { readCatalogSnapshot } from '../src/policy/catalog-snapshot.js';
import { createPolicyJudge } from '../src/policy/engine.js';
import { loadRules } from '../src/policy/rules-load.js';
import { loadParser } from '../src/sql/parse.js';
import { judgeContext } from '../test/support/judge-context.js';
import { countArg } from './lib/count-arg.js';

const iterations = countArg('usage: node --import tsx bench/judge.ts [iterations (default 2000)]', 2000);
const statements: [string, (n: number) => string][] = [
  ['point select (pgbench -S shape)', (n) => `SELECT total FROM orders WHERE id = ${n}`],
  ['point select, $1', () => 'SELECT total FROM orders WHERE id = $1'],
  [
    'join + order/limit',
    (n) =>
      `SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total > ${n} ORDER BY o.id LIMIT 10`,
  ],
  ['masked columns (*)', (n) => `SELECT * FROM customers WHERE id = ${n}`],
  ['insert, tenant filled', (n) => `INSERT INTO orders (customer_id, total) VALUES (${n}, 10)`],
  ['update', (n) => `UPDATE orders SET status = 'paid' WHERE id = ${n}`],
  ['global table (allow)', (n) => `SELECT name FROM products WHERE id = ${n}`],
  ['denied (unlisted)', (n) => `SELECT * FROM internal_notes WHERE id = ${n}`],
];

await loadParser();
const rules = await loadRules(['rules']);
const catalog = readCatalogSnapshot('grammar-tests/catalog.json');
const ctx = judgeContext('acme', { human: 'bench', agent: 'bench' });

function micros(fn: () => void, n: number): number {
  for (let i = 0; i < Math.min(200, n); i++) fn(); // warm the JIT
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - t0) / 1000 / n;
}

const rows: string[][] = [];
for (const [name, sql] of statements) {
  // Cold: no cache at all, so every call parses, rewrites, deparses, re-parses and checks.
  const cold = createPolicyJudge(rules, catalog, { searchPath: 'public', cacheSize: 0 });
  let k = 0;
  const coldUs = micros(() => cold.judge(sql(++k), ctx), iterations);
  const warm = createPolicyJudge(rules, catalog, { searchPath: 'public' });
  const exactUs = micros(() => warm.judge(sql(7), ctx), iterations * 10);
  let j = 0;
  const shapeUs = micros(() => warm.judge(sql(1000 + (++j % 50_000)), ctx), iterations * 10);
  const kind = warm.judge(sql(7), ctx).verdict.kind;
  rows.push([name, kind, coldUs.toFixed(1), exactUs.toFixed(2), shapeUs.toFixed(2)]);
}
const head = ['statement', 'verdict', 'cold µs', 'cached exact µs', 'cached shape µs'];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
const line = (r: string[]): string => `| ${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
console.log(line(head));
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const r of rows) console.log(line(r));

// Judging is synchronous, so a long statement holds the event loop (and every other session) for
// as long as it takes: limits.maxQueryBytes is set from this (docs/config.md).
// Statements the decision caches do not hold are judged on the judge thread (limits.judgeThread).
console.log('\nlong statements (cold), µs per byte of SQL:');
const long = createPolicyJudge(rules, catalog, { searchPath: 'public', cacheSize: 0 });
const longStatements: [string, (n: number) => string, number[]][] = [
  [
    'CASE with n arms',
    (n) =>
      `SELECT CASE ${Array.from({ length: n }, (_, i) => `WHEN id = ${i} THEN ${i}`).join(' ')} END FROM orders`,
    [1000, 4000],
  ],
  [
    // Literal keys of an INSERT into a parent-scoped table are checked once for the statement.
    'INSERT of n rows into parent-scoped order_items, literal keys',
    (n) =>
      `INSERT INTO order_items (order_id, sku, qty) VALUES ${Array.from({ length: n }, (_, i) => `(${i}, 'SKU-${i}', 1)`).join(', ')}`,
    [300, 3000],
  ],
  [
    // Keys that are expressions get a guard per row: the costliest per byte.
    'INSERT of n rows into parent-scoped order_items, expression keys',
    (n) =>
      `INSERT INTO order_items (order_id, sku, qty) VALUES ${Array.from({ length: n }, (_, i) => `(${i} + 0, 'SKU-${i}', 1)`).join(', ')}`,
    [300, 3000],
  ],
];
for (const [name, make, sizes] of longStatements) {
  for (const n of sizes) {
    const sql = make(n);
    const us = micros(() => long.judge(sql, ctx), 3);
    console.log(
      `  ${name.replace(' n ', ` ${n} `)}, ${sql.length} bytes: ${(us / 1000).toFixed(0)} ms, ${(us / sql.length).toFixed(2)} µs per byte`,
    );
  }
}
