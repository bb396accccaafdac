import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRulesAgainstCatalog, loadCatalog, type Catalog } from '../src/policy/catalog.js';
import { catalogSnapshot } from '../src/policy/catalog-snapshot.js';
import { loadRules } from '../src/policy/rules-load.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';

const snapshotFile = 'grammar-tests/catalog.json';
let db: TestDatabase;
let catalog: Catalog;

beforeAll(async () => {
  db = await createTestDatabase('cat');
  await db.sql(readFileSync('src/demo/seed.sql', 'utf8'));
  catalog = await loadCatalog(db.url, 'public');
});
afterAll(() => db.drop());

describe('loadCatalog', () => {
  it('reads the effective search path, demo tables with typed columns in attnum order', () => {
    expect(catalog.searchPath).toEqual(['pg_catalog', 'public']);
    const orders = catalog.relations.public?.orders;
    expect(orders?.columns.map((c) => c.name)).toEqual([
      'id',
      'org_id',
      'customer_id',
      'total',
      'status',
      'created_at',
    ]);
    expect(orders?.columns[3]).toMatchObject({ type: 'numeric', sqlType: 'numeric(12,2)', position: 4 });
    expect(catalog.relations.pg_catalog?.pg_class?.kind).toBe('r');
  });

  it('marks functions that take or return object-naming types as unsafe', () => {
    expect(catalog.functions.pg_catalog?.count?.safe).toBe(true);
    expect(catalog.functions.pg_catalog?.lower?.safe).toBe(true);
    expect(catalog.functions.pg_catalog?.pg_relation_size?.safe).toBe(false);
    expect(catalog.functions.pg_catalog?.to_regclass?.safe).toBe(false);
  });

  it('accepts the demo rules and names each problem in broken ones', async () => {
    const rules = await loadRules(['rules']);
    expect(checkRulesAgainstCatalog(rules, catalog)).toEqual([]);
    const broken = {
      ...rules,
      tables: {
        ...rules.tables,
        'public.orders': { scope: 'tenant' as const, tenant_column: 'tenant', access: ['select' as const] },
        'public.nope': { scope: 'global' as const, access: ['select' as const] },
        'public.customers': {
          scope: 'tenant' as const,
          tenant_column: 'org_id',
          access: ['select' as const],
          columns: { deny: ['social'], mask: {} },
        },
      },
    };
    expect(checkRulesAgainstCatalog(broken, catalog)).toEqual([
      'tables.public.orders.tenant_column: column "tenant" does not exist in public.orders',
      'tables.public.customers.columns.deny: column "social" does not exist',
      'tables.public.nope: relation public.nope does not exist in the database',
    ]);
  });

  it('grammar-tests/catalog.json is the demo catalog (UPDATE_SNAPSHOT=1 rewrites it)', () => {
    const now = catalogSnapshot(catalog);
    if (process.env.UPDATE_SNAPSHOT) writeFileSync(snapshotFile, now);
    expect(readFileSync(snapshotFile, 'utf8')).toBe(now);
  });
});
