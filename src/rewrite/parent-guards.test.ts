import { beforeAll, describe, expect, it } from 'vitest';
import { createPolicyJudge } from '../policy/engine.js';
import type { Judge } from '../policy/verdict.js';
import { invariantObjection, loadDemoPolicy, type DemoPolicy } from '../../test/support/demo-policy.js';
import { judgeContext } from '../../test/support/judge-context.js';

/**
 * The keys of a multi-row INSERT into parent-scoped order_items: checked once for the statement
 * when they are literals or parameters, row by row otherwise, and the invariant accepts the shared
 * check only in exactly the form pgwarden writes, for exactly the keys of the rows.
 */
let demo: DemoPolicy;
let judge: Judge;
const ctx = judgeContext('acme', { human: 'h@acme.test', agent: 'unit' });

beforeAll(async () => {
  demo = await loadDemoPolicy();
  judge = createPolicyJudge(demo.rules, demo.catalog, { searchPath: 'public' });
});

function rewritten(sql: string): string {
  const v = judge.judge(sql, ctx).verdict;
  if (v.kind !== 'rewrite') throw new Error(`${sql}: ${JSON.stringify(v)}`);
  return v.sql;
}

const insert = (keys: string[]): string =>
  `INSERT INTO order_items (order_id, sku, qty) VALUES ${keys.map((k, i) => `(${k}, 'S${i}', 1)`).join(', ')}`;

describe('a multi-row INSERT into a parent-scoped table', () => {
  it('checks literal and parameter keys once for the statement, in a fraction of a guard per row', () => {
    const out = rewritten(insert(['1', '$1', '2', 'NULL']));
    expect(out).toMatch(/^WITH pgwarden_keys AS MATERIALIZED \(SELECT CASE WHEN /);
    expect(out).toContain(
      'ARRAY[CAST(1 AS bigint), CAST($1 AS bigint), CAST(2 AS bigint), CAST(NULL AS bigint)]',
    );
    expect(out).toContain("VALUES ((SELECT CAST(1 AS bigint) FROM pgwarden_keys), 'S0', 1)");
    expect(invariantObjection(demo, out)).toBeUndefined();
    const keys = Array.from({ length: 1000 }, (_, i) => String(i));
    expect(rewritten(insert(keys)).length / 1000).toBeLessThan(100);
  });

  it('guards row by row a key that is an expression, a single row, or an INSERT with a WITH of its own', () => {
    for (const sql of [
      insert(['1', '1 + 1']),
      insert(['1']),
      `WITH w AS (SELECT 1) ${insert(['1', '2'])}`,
      `INSERT INTO order_items (order_id, sku, qty) WITH w AS (SELECT 1) VALUES (1, 'a', 1), (2, 'b', 1)`,
    ]) {
      const out = rewritten(sql);
      expect(out, sql).not.toContain('pgwarden_keys');
      expect(out, sql).toContain('pgwarden_key)');
      expect(invariantObjection(demo, out), sql).toBeUndefined();
    }
  });

  it("is refused by the invariant in any form but pgwarden's own, for exactly the rows' keys", () => {
    const out = rewritten(insert(['1', '2', '3']));
    const forged: [string, string][] = [
      [
        'another tenant',
        out.replace(
          "org_id OPERATOR(pg_catalog.=) 'acme'::text",
          "org_id OPERATOR(pg_catalog.=) 'globex'::text",
        ),
      ],
      [
        'a row key not in the checked keys',
        out.replace(
          '(SELECT CAST(3 AS bigint) FROM pgwarden_keys)',
          '(SELECT CAST(4 AS bigint) FROM pgwarden_keys)',
        ),
      ],
      ['a checked key dropped', out.replace(', CAST(3 AS bigint)]', ']')],
      ['not materialized', out.replace('AS MATERIALIZED (', 'AS (')],
      [
        'the check always true',
        out.replace(
          /^WITH pgwarden_keys AS MATERIALIZED \(.*?\) INSERT/,
          'WITH pgwarden_keys AS MATERIALIZED (SELECT true AS ok) INSERT',
        ),
      ],
      ['no lock on the parent rows', out.replace(' FOR KEY SHARE', '')],
      [
        'a row read through another CTE',
        out
          .replace('(SELECT CAST(1 AS bigint) FROM pgwarden_keys)', '(SELECT CAST(1 AS bigint) FROM w)')
          .replace('WITH pgwarden_keys', 'WITH w AS (SELECT 1), pgwarden_keys'),
      ],
      ['a row not read through the check', out.replace('(SELECT CAST(2 AS bigint) FROM pgwarden_keys)', '2')],
    ];
    for (const [what, sql] of forged) {
      expect(sql, what).not.toBe(out);
      expect(invariantObjection(demo, sql), what).toBeDefined();
    }
  });
});
