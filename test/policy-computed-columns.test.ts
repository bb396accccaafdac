import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCatalog, checkRulesAgainstCatalog } from '../src/policy/catalog.js';
import { loadRules } from '../src/policy/rules-load.js';
import { loadParser } from '../src/sql/parse.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { startDemoRulesProxy, withPgClient, type TestProxy } from './support/proxy.js';

/**
 * Columns whose value is computed when read (PostgreSQL 18's virtual generated columns): a
 * condition on one runs its expression, which may raise on another tenant's row if it runs before
 * the tenant's filter (red team, round 56: a division by zero told which of globex's order items
 * were cancelled, and their order and SKU).
 */
let db: TestDatabase;
let proxy: TestProxy;
let url: string;
let virtualColumns = false;

beforeAll(async () => {
  await loadParser();
  db = await createTestDatabase('computed_columns');
  await db.sql(readFileSync('src/demo/seed.sql', 'utf8'));
  const [v] = await db.sql<{ n: number }>(`SELECT current_setting('server_version_num')::int AS n`);
  virtualColumns = v!.n >= 180000;
  if (!virtualColumns) return;
  await db.sql(`
    ALTER TABLE public.order_items ADD COLUMN line_total numeric NOT NULL DEFAULT 10;
    ALTER TABLE public.order_items ALTER COLUMN qty DROP NOT NULL;
    ALTER TABLE public.order_items ADD COLUMN unit_price numeric GENERATED ALWAYS AS (line_total / qty) VIRTUAL;
    -- globex's cancelled lines: qty 0.
    UPDATE public.order_items i SET qty = 0 FROM public.orders o
      WHERE o.id = i.order_id AND o.org_id = 'globex' AND i.sku = 'SKU-1';
  `);
  ({ proxy, url } = await startDemoRulesProxy(db));
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

describe('a virtual generated column', () => {
  it("is no plain column: conditions on it run after the tenant's filter, and raise on no other tenant's row", async (t) => {
    if (!virtualColumns) return t.skip();
    const [globex] = await db.sql<{ id: number }>(
      `SELECT i.id::int AS id FROM order_items i JOIN orders o ON o.id = i.order_id
       WHERE o.org_id = 'globex' AND i.qty = 0 ORDER BY i.id LIMIT 1`,
    );
    const probes = [
      `SELECT count(*) AS n FROM order_items WHERE unit_price IS NOT NULL`,
      `SELECT id FROM order_items WHERE id = ${globex!.id} AND sku = 'SKU-1' AND unit_price IS NOT NULL`,
      `UPDATE order_items SET qty = qty WHERE id = ${globex!.id} AND unit_price > 0`,
      `DELETE FROM order_items WHERE id = ${globex!.id} AND unit_price > 0`,
    ];
    // Straight to the server the row raises (so the test can fail) ...
    await expect(db.sql(probes[1]!)).rejects.toMatchObject({ code: '22012' });
    await withPgClient(url, async (c) => {
      // ... and through pgwarden it is never reached.
      for (const sql of probes) await c.query(sql);
      // The look-alike: the caller's own rows are read through the column as usual.
      const own = await c.query<{ n: string }>(
        'SELECT count(*) AS n FROM order_items WHERE unit_price IS NOT NULL AND unit_price > 0',
      );
      expect(Number(own.rows[0]!.n)).toBeGreaterThan(0);
    });
  });

  it('may not be a tenant column: the rules are refused', async (t) => {
    if (!virtualColumns) return t.skip();
    await db.sql(
      `ALTER TABLE public.orders ADD COLUMN tenant_v text GENERATED ALWAYS AS (org_id || '') VIRTUAL`,
    );
    const rules = await loadRules(['rules']);
    const problems = checkRulesAgainstCatalog(
      {
        ...rules,
        tables: {
          ...rules.tables,
          'public.orders': { ...rules.tables['public.orders']!, tenant_column: 'tenant_v' },
        },
      },
      await loadCatalog(db.url, 'public'),
    );
    expect(problems.join('\n')).toContain('tenant_column: column "tenant_v" is a virtual generated column');
  });
});
