/**
 * Why libpg-query: how fast PostgreSQL's own grammar parses here, and that it accepts the whole
 * regression corpus (which node-sql-parser does not; see README). Not a test: prints figures.
 * Run: node --import tsx bench/parser.ts
 */
import { readFileSync } from 'node:fs';
import { loadParser, parseSql } from '../src/sql/parse.js';

await loadParser();
const cases = {
  'one-table SELECT': 'SELECT id, total FROM orders WHERE org_id = $1 AND status = $2',
  'two-table join, ORDER BY, LIMIT':
    'SELECT o.id, c.name, o.total FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.status = $1 ORDER BY o.created_at DESC LIMIT 20',
};

function micros(sql: string, n: number): number {
  for (let i = 0; i < 2000; i++) parseSql(sql);
  const t = performance.now();
  for (let i = 0; i < n; i++) parseSql(sql);
  return ((performance.now() - t) * 1000) / n;
}

console.log('| statement | libpg-query parse (µs) |\n|---|---|');
for (const [name, sql] of Object.entries(cases))
  console.log(`| ${name} | ${micros(sql, 20_000).toFixed(1)} |`);

const only = parseSql('SELECT * FROM ONLY orders').stmts[0]!.stmt as {
  SelectStmt: { fromClause: { RangeVar: { relname: string; inh?: boolean } }[] };
};
const rv = only.SelectStmt.fromClause[0]!.RangeVar;
console.log(`\nSELECT * FROM ONLY orders → relation "${rv.relname}", inheritance ${rv.inh ? 'on' : 'off'}`);

const corpus = readFileSync(new URL('../test/corpus/pg-regress.jsonl', import.meta.url), 'utf8')
  .split('\n')
  .filter(Boolean);
let ok = 0;
let selects = 0;
const t = performance.now();
for (const line of corpus) {
  const { sql } = JSON.parse(line) as { sql: string };
  try {
    const r = parseSql(sql);
    ok++;
    if (r.stmts.some((s) => 'SelectStmt' in s.stmt)) selects++;
  } catch {
    // counted as a failure below
  }
}
console.log(
  `corpus: ${ok}/${corpus.length} statements parse (${selects} SELECTs), ${((performance.now() - t) / 1000).toFixed(1)} s in all`,
);
