import { beforeAll, describe, expect, it } from 'vitest';
import type { Node } from '../sql/ast.js';
import { parseSql } from '../sql/parse.js';
import { invariantObjection, loadDemoPolicy, type DemoPolicy } from '../../test/support/demo-policy.js';
import { isSafe, paramsUsedOnce, type ColumnTypes } from './safe-conjuncts.js';

const types: Record<string, string> = {
  id: 'int8',
  qty: 'int4',
  sku: 'text',
  total: 'numeric',
  'o.id': 'int8',
  'i.order_id': 'int8',
  'o.total': 'numeric',
  'o.created_at': 'timestamptz',
  'd.day': 'date',
};
const typeOf: ColumnTypes = (fields) => types[fields.join('.')];
const where = (expr: string): Node =>
  (parseSql(`SELECT 1 WHERE ${expr}`).stmts[0]!.stmt.SelectStmt as { whereClause: Node }).whereClause;

let demo: DemoPolicy;
beforeAll(async () => {
  demo = await loadDemoPolicy();
});

describe('a parameter in a conjunct that may run on any row', () => {
  it('stands nowhere else in the statement: another use could give it a type whose cast of the column raises', () => {
    const once = (sql: string) => paramsUsedOnce(parseSql(sql).stmts.map((s) => s.stmt));
    const lone = once('SELECT 1 FROM order_items i WHERE i.order_id = $1 AND i.sku = $2');
    expect(isSafe(where('id = $1'), typeOf, lone)).toBe(true);
    expect(isSafe(where('id IN ($1, $2)'), typeOf, lone)).toBe(true);
    // The attack's shape (red team, round 19): $1 first typed oid elsewhere.
    const twice = once('SELECT x.o FROM (SELECT $1::oid AS o) x, order_items i WHERE i.order_id = $1');
    expect(isSafe(where('id = $1'), typeOf, twice)).toBe(false);
    expect(isSafe(where('id IN (1, $1)'), typeOf, twice)).toBe(false);
    // Constants are typed at parse time whatever else the statement holds.
    expect(isSafe(where('id = 5'), typeOf, twice)).toBe(true);
  });
});

describe('conjuncts that may run on any row', () => {
  it('are comparisons of columns with constants, parameters of cast-safe types, and same-typed columns', () => {
    for (const e of [
      'id = 5',
      'id = $1',
      "sku = 'SKU-1'",
      'sku = $2',
      'total > 10.5',
      'o.id = i.order_id',
      'qty = id',
      'id IN (1, 2, 3)',
      'sku IS NOT NULL',
      'id OPERATOR(pg_catalog.=) 5',
    ])
      expect(
        isSafe(where(e), typeOf, () => true),
        e,
      ).toBe(true);
  });

  it('are never anything that could raise on a row value', () => {
    for (const e of [
      'qty / 0 = 1', // arithmetic
      'sku::int = 1', // a cast of the column
      'lower(sku) = $1', // a function
      'total = $1', // a parameter the client may declare float8: numeric would be cast
      'o.total = id', // numeric against bigint: the bigint is cast, fine, but not proven here
      'o.created_at = d.day', // date to timestamptz can leave its range
      'unknown_col = 1', // a column whose type is not known
      'id IN (1, qty / 0)',
      'id = (SELECT 1)',
      'NOT (id = 5)',
    ])
      expect(
        isSafe(where(e), typeOf, () => true),
        e,
      ).toBe(false);
  });
});

describe('the invariant for a write on a parent-scoped table', () => {
  const pf = (r: string): string =>
    `${r}.order_id OPERATOR(pg_catalog.=) ANY (SELECT public.orders.id FROM public.orders WHERE public.orders.org_id OPERATOR(pg_catalog.=) 'acme'::text)`;
  const exists = (r: string): string =>
    `EXISTS (SELECT 1 FROM public.orders WHERE public.orders.id OPERATOR(pg_catalog.=) ${r}.order_id AND public.orders.org_id OPERATOR(pg_catalog.=) 'acme'::text)`;
  const check = (sql: string): string | undefined => invariantObjection(demo, sql);

  it('accepts cannot-raise conjuncts between the parent filter and the guard', () => {
    expect(
      check(
        `DELETE FROM order_items WHERE ${pf('order_items')} AND id = 5 AND CASE WHEN ${exists('order_items')} THEN id = 5 ELSE false END`,
      ),
    ).toBeUndefined();
  });

  it('refuses a conjunct that could raise there, and a guard that is not the parent filter', () => {
    expect(
      check(
        `DELETE FROM order_items WHERE ${pf('order_items')} AND 1 / (qty - 7) = 1 AND CASE WHEN ${exists('order_items')} THEN true ELSE false END`,
      ),
    ).toMatch(/lacks the parent filter/);
    expect(
      check(
        `DELETE FROM order_items WHERE ${pf('order_items')} AND CASE WHEN true THEN qty > 1 ELSE false END`,
      ),
    ).toMatch(/lacks the parent filter/);
    expect(check(`UPDATE order_items SET order_id = 1 WHERE ${pf('order_items')}`)).toMatch(/is assigned/);
  });
});
