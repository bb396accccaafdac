import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRulesAgainstCatalog, loadCatalog, type Catalog } from '../src/policy/catalog.js';
import { TENANT_COLUMN_TYPES, tenantFitsType } from '../src/policy/tenant-id.js';
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

  it('refuses a parent-scoped table unless a validated foreign key ties its key to the parent (red team, round 44)', async () => {
    await db.sql(`
      CREATE TABLE tenant_orders (id bigint PRIMARY KEY, org_id text NOT NULL, order_no int NOT NULL, UNIQUE (org_id, order_no), UNIQUE (order_no, id));
      CREATE TABLE global_orders (id bigint PRIMARY KEY, org_id text NOT NULL, ref text NOT NULL UNIQUE);
      -- The attack: order_no is unique only within a tenant, so a key names a row in each tenant.
      CREATE TABLE shipments (id int PRIMARY KEY, org_order_no int NOT NULL);
      -- No constraint at all: orphans another tenant can adopt by inserting a parent with their key.
      CREATE TABLE attachments (id int PRIMARY KEY, order_id bigint NOT NULL);
      CREATE TABLE unchecked (id int PRIMARY KEY, order_id bigint NOT NULL);
      ALTER TABLE unchecked ADD FOREIGN KEY (order_id) REFERENCES tenant_orders (id) NOT VALID;
      CREATE TABLE defaulted (id int PRIMARY KEY, order_id bigint DEFAULT 1 REFERENCES tenant_orders (id) ON DELETE SET DEFAULT);
      CREATE TABLE composite (id int PRIMARY KEY, order_no int, order_id bigint, FOREIGN KEY (order_no, order_id) REFERENCES tenant_orders (order_no, id));
      -- The look-alikes: a key the database ties to one parent row, by primary key or by a unique column.
      CREATE TABLE lines (id int PRIMARY KEY, order_id bigint NOT NULL REFERENCES tenant_orders (id) ON DELETE CASCADE);
      CREATE TABLE notes (id int PRIMARY KEY, ref text REFERENCES global_orders (ref) ON DELETE SET NULL);
    `);
    try {
      const fresh = await loadCatalog(db.url, 'public');
      const rules = await loadRules(['rules']);
      const child = (foreign_key: string, references = 'id', table = 'public.tenant_orders') => ({
        scope: 'parent' as const,
        parent: { table, foreign_key, references },
        access: ['select' as const, 'insert' as const],
      });
      const tables = {
        ...rules.tables,
        'public.tenant_orders': {
          scope: 'tenant' as const,
          tenant_column: 'org_id',
          access: ['select' as const],
        },
        'public.global_orders': {
          scope: 'tenant' as const,
          tenant_column: 'org_id',
          access: ['select' as const],
        },
        'public.shipments': child('org_order_no', 'order_no'),
        'public.attachments': child('order_id'),
        'public.unchecked': child('order_id'),
        'public.defaulted': child('order_id'),
        'public.composite': child('order_id'),
        'public.lines': child('order_id'),
        'public.notes': child('ref', 'ref', 'public.global_orders'),
      };
      const problems = checkRulesAgainstCatalog({ ...rules, tables }, fresh);
      const about = (t: string): string[] => problems.filter((p) => p.startsWith(`tables.public.${t}.`));
      expect(about('shipments')).toEqual([
        expect.stringContaining(
          'no foreign key constraint FOREIGN KEY (org_order_no) REFERENCES public.tenant_orders (order_no)',
        ),
      ]);
      expect(about('attachments')).toEqual([expect.stringContaining('no foreign key constraint')]);
      expect(about('composite')).toEqual([expect.stringContaining('no foreign key constraint')]);
      expect(about('unchecked')).toEqual([expect.stringContaining('is NOT VALID')]);
      expect(about('defaulted')).toEqual([expect.stringContaining('ON DELETE SET DEFAULT')]);
      expect(about('lines')).toEqual([]);
      expect(about('notes')).toEqual([]);
      expect(problems).toHaveLength(5);
      // A snapshot written before foreign keys were kept cannot vouch for any parent key.
      const old = JSON.parse(catalogSnapshot(fresh)) as Catalog;
      delete (old.relations.public?.lines as { foreignKeys?: unknown }).foreignKeys;
      expect(
        checkRulesAgainstCatalog({ ...rules, tables: { ...rules.tables, ...tables } }, old),
      ).toContainEqual(
        expect.stringMatching(/^tables\.public\.lines\.parent: the catalog snapshot holds no foreign keys/),
      );
    } finally {
      await db.sql(
        'DROP TABLE shipments, attachments, unchecked, defaulted, composite, lines, notes, tenant_orders, global_orders',
      );
    }
  });

  it('refuses a parent-scoped table in a table inheritance tree, on either side; partitions are fine (red team, round 47)', async () => {
    await db.sql(`
      CREATE TABLE porders (id bigint PRIMARY KEY, org_id text NOT NULL);
      CREATE TABLE porders_arch () INHERITS (porders);
      CREATE TABLE pnotes (id int PRIMARY KEY, porder_id bigint NOT NULL REFERENCES porders (id));
      CREATE TABLE inh_notes (id int PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders (id));
      CREATE TABLE inh_notes_old () INHERITS (inh_notes);
      -- The look-alike: a partitioned child, named as a whole or by one partition (a cloned key).
      CREATE TABLE item_p (id int, order_id bigint NOT NULL REFERENCES orders (id)) PARTITION BY RANGE (id);
      CREATE TABLE item_p1 PARTITION OF item_p FOR VALUES FROM (0) TO (1000);
    `);
    try {
      const fresh = await loadCatalog(db.url, 'public');
      const rules = await loadRules(['rules']);
      const child = (foreign_key: string, table = 'public.orders') => ({
        scope: 'parent' as const,
        parent: { table, foreign_key, references: 'id' },
        access: ['select' as const],
      });
      const problems = checkRulesAgainstCatalog(
        {
          ...rules,
          tables: {
            ...rules.tables,
            'public.porders': {
              scope: 'tenant' as const,
              tenant_column: 'org_id',
              access: ['select' as const],
            },
            'public.pnotes': child('porder_id', 'public.porders'),
            'public.inh_notes': child('order_id'),
            'public.item_p': child('order_id'),
            'public.item_p1': child('order_id'),
          },
        },
        fresh,
      );
      expect(problems).toEqual([
        expect.stringMatching(
          /^tables\.public\.pnotes\.parent: public\.porders is in a table inheritance tree/,
        ),
        expect.stringMatching(
          /^tables\.public\.inh_notes\.parent: public\.inh_notes is in a table inheritance tree/,
        ),
      ]);
    } finally {
      await db.sql('DROP TABLE pnotes, porders CASCADE; DROP TABLE inh_notes CASCADE; DROP TABLE item_p');
    }
  });

  it('refuses a tenant column of a domain or citext type, or with a nondeterministic collation (red team, round 47)', async () => {
    await db.sql(`
      CREATE DOMAIN tenant_id AS text;
      CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
      CREATE TABLE t_domain (id int PRIMARY KEY, org tenant_id NOT NULL);
      CREATE TABLE t_ci (id int PRIMARY KEY, org text COLLATE ci NOT NULL);
      CREATE TABLE t_ok (id int PRIMARY KEY, org varchar(20) COLLATE "C" NOT NULL, n int);
    `);
    try {
      const fresh = await loadCatalog(db.url, 'public');
      const rules = await loadRules(['rules']);
      const scoped = { scope: 'tenant' as const, tenant_column: 'org', access: ['select' as const] };
      const problems = checkRulesAgainstCatalog(
        {
          ...rules,
          tables: {
            ...rules.tables,
            'public.t_domain': scoped,
            'public.t_ci': scoped,
            'public.t_ok': scoped,
          },
        },
        fresh,
      );
      expect(problems).toEqual([
        expect.stringMatching(
          /^tables\.public\.t_domain\.tenant_column: column "org" has type tenant_id; a tenant column is/,
        ),
        expect.stringMatching(
          /^tables\.public\.t_ci\.tenant_column: column "org" has a nondeterministic collation/,
        ),
      ]);
      // Every type a tenant column may have takes a tenant id.
      for (const type of TENANT_COLUMN_TYPES)
        expect(
          tenantFitsType(type === 'uuid' ? '0e9c4c4e-3f43-4a3e-9a59-0c7b0f8e1d2a' : '42', type),
          type,
        ).toBe(true);
    } finally {
      await db.sql('DROP TABLE t_domain, t_ci, t_ok; DROP DOMAIN tenant_id; DROP COLLATION ci');
    }
  });

  it('refuses rules that hide the tenant column, in the base rule or a role (red team, round 44)', async () => {
    const rules = await loadRules(['rules']);
    const orders = rules.tables['public.orders']!;
    const withColumns = (columns: { allow?: string[]; deny: string[]; mask: Record<string, string> }) =>
      checkRulesAgainstCatalog(
        {
          ...rules,
          tables: { ...rules.tables, 'public.orders': { ...orders, columns } },
          roles: { ...rules.roles, hider: { tables: { 'public.customers': { columns } }, functions: [] } },
        },
        catalog,
      );
    expect(withColumns({ allow: ['id'], deny: [], mask: {} })).toEqual([
      expect.stringMatching(/^tables\.public\.orders\.columns\.allow: must list the tenant column "org_id"/),
      expect.stringMatching(/^roles\.hider\.tables\.public\.customers\.columns\.allow: must list/),
    ]);
    expect(withColumns({ deny: ['org_id'], mask: {} })).toEqual([
      expect.stringMatching(
        /^tables\.public\.orders\.columns\.deny: the tenant column "org_id" cannot be denied/,
      ),
      expect.stringMatching(/^roles\.hider\.tables\.public\.customers\.columns\.deny: /),
    ]);
    expect(withColumns({ deny: [], mask: { org_id: "'x'" } })).toEqual([
      expect.stringMatching(
        /^tables\.public\.orders\.columns\.mask: the tenant column "org_id" cannot be masked/,
      ),
      expect.stringMatching(/^roles\.hider\.tables\.public\.customers\.columns\.mask: /),
    ]);
    // The look-alike: an allowlist that names the tenant column, a mask and a deny of others.
    expect(withColumns({ allow: ['id', 'org_id'], deny: [], mask: { id: '0' } })).toEqual([]); // A parent-scoped table's key, in a role's override: every INSERT under it failed (round 47).
    expect(
      checkRulesAgainstCatalog(
        {
          ...rules,
          roles: {
            ...rules.roles,
            hider: {
              tables: { 'public.order_items': { columns: { deny: ['order_id'], mask: {} } } },
              functions: [],
            },
          },
        },
        catalog,
      ),
    ).toEqual([
      'roles.hider.tables.public.order_items.columns.deny: the parent key "order_id" cannot be denied (pgwarden filters on it and writes it; agents see only their own tenant in it anyway)',
    ]);
  });

  it('grammar-tests/catalog.json is the demo catalog (UPDATE_SNAPSHOT=1 rewrites it)', () => {
    const now = catalogSnapshot(catalog);
    if (process.env.UPDATE_SNAPSHOT) writeFileSync(snapshotFile, now);
    expect(readFileSync(snapshotFile, 'utf8')).toBe(now);
  });
});
