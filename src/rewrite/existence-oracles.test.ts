import { beforeAll, describe, expect, it } from 'vitest';
import { createPolicyJudge } from '../policy/engine.js';
import type { Judge, JudgeContext, Verdict } from '../policy/verdict.js';
import { freshSessionState } from '../policy/verdict.js';
import { invariantObjection, loadDemoPolicy, type DemoPolicy } from '../../test/support/demo-policy.js';

const ctx: JudgeContext = {
  identity: { human: 'h', agent: 'a', tenant: 'acme', roles: [], tokenId: undefined, expiresAt: undefined },
  protocol: 'simple',
  session: freshSessionState(),
};

let demo: DemoPolicy;
let judge: Judge;
beforeAll(async () => {
  demo = await loadDemoPolicy();
  judge = createPolicyJudge(demo.rules, demo.catalog, { searchPath: 'public' });
});

/** The answer an agent sees, with the name it wrote replaced, so two answers can be compared. */
function answer(sql: string, written: string): { kind: Verdict['kind']; message: string; reasons: string } {
  const v = judge.judge(sql, ctx).verdict;
  const message = v.kind === 'deny' ? v.message.split(written).join('<name>') : '';
  return { kind: v.kind, message, reasons: v.reasons.join(',') };
}

describe('an unlisted relation and one that does not exist get the same answer', () => {
  // internal_notes exists in the demo database (and in the catalog snapshot); nonexistent_tbl does not.
  it.each([
    ['SELECT * FROM %s', 'internal_notes', 'nonexistent_tbl'],
    ['SELECT * FROM %s', 'public.internal_notes', 'public.nonexistent_tbl'],
    ['SELECT id FROM orders WHERE EXISTS (SELECT 1 FROM %s)', 'internal_notes', 'nonexistent_tbl'],
    ['DELETE FROM %s WHERE id = 1', 'internal_notes', 'nonexistent_tbl'],
    ['INSERT INTO %s (note) VALUES (1)', 'public.internal_notes', 'public.nonexistent_tbl'],
    ['SELECT NULL::%s', 'internal_notes', 'nonexistent_tbl'],
    ['SELECT (NULL::%s).*', 'public.internal_notes', 'public.nonexistent_tbl'],
    ['SELECT ROW(1, 2, 3)::%s[]', 'internal_notes', 'nonexistent_tbl'],
    ['PREPARE p(%s) AS SELECT $1', 'internal_notes', 'nonexistent_tbl'],
  ])('%s', (template, existing, missing) => {
    const a = answer(template.replace('%s', existing), existing);
    const b = answer(template.replace('%s', missing), missing);
    expect(a.kind).toBe('deny');
    expect(a).toEqual(b);
    // Still actionable: a relation's refusal lists what the agent may use.
    if (!template.includes('::') && !template.includes('PREPARE'))
      expect(a.message).toContain('public.orders');
  });

  it('lets a listed table with nothing hidden be used as a type, and says why a hiding one is refused', () => {
    expect(judge.judge('SELECT ROW(1, $$s$$, $$n$$, 1.0)::products', ctx).verdict.kind).toBe('allow');
    const v = judge.judge('SELECT (NULL::customers).*', ctx).verdict;
    expect(v.kind).toBe('deny');
    expect(v.kind === 'deny' && v.message).toMatch(/public\.customers .*columns agents may not see/);
    expect(v.kind === 'deny' && v.message).not.toContain('ssn');
  });
});

describe('the invariant check refuses values that expand into several columns', () => {
  const check = (sql: string): string | undefined => invariantObjection(demo, sql);

  it('in INSERT ... SELECT, in VALUES rows and in MERGE ... INSERT', () => {
    // The literal at the tenant column's position is acme, but (v).* moves it one column on.
    expect(
      check(
        "INSERT INTO orders (customer_id, total, org_id, status) SELECT (v).*, 'acme'::text, 'x' FROM (VALUES (NULL::bigint, 1.00)) AS v(a, b)",
      ),
    ).toMatch(/expands into several columns/);
    expect(
      check(
        "INSERT INTO orders (customer_id, total, org_id, status) VALUES ((ROW(NULL::bigint, 1.00)).*, 'acme'::text, 'x')",
      ),
    ).toMatch(/expands into several columns/);
    expect(
      check(
        "MERGE INTO orders o USING (SELECT 1 AS k) AS s ON o.org_id OPERATOR(pg_catalog.=) 'acme'::text WHEN NOT MATCHED THEN INSERT (customer_id, total, org_id) VALUES ((s.r).*, 'acme'::text)",
      ),
    ).toMatch(/expands into several columns/);
    expect(
      check(
        "INSERT INTO products (id, sku, name, price) SELECT (v).*, 'n', 1.0 FROM (VALUES (1, 's')) AS v(a, b)",
      ),
    ).toMatch(/expands into several columns/);
  });

  it('accepts field selection, which keeps every value at its position', () => {
    expect(
      check(
        "INSERT INTO orders (customer_id, total, org_id) SELECT (v).a, (v).b, 'acme'::text FROM (VALUES (NULL::bigint, 1.00)) AS v(a, b)",
      ),
    ).toBeUndefined();
  });
});
