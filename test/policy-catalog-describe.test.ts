import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCatalog } from '../src/policy/catalog.js';
import { createPolicyJudge } from '../src/policy/engine.js';
import { loadRules } from '../src/policy/rules-load.js';
import { loadParser } from '../src/sql/parse.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { startDemoRulesProxy, startTestProxy, withPgClient, type TestProxy } from './support/proxy.js';

const run = promisify(execFile);

/**
 * psql's \d <table> and \d+ through pgwarden with the demo rules: the listed table described as
 * the server describes it, less what the rules hide (a denied column, its index and check, a
 * foreign key from an unlisted table, comments on hidden objects) and less what agents are never
 * told (policies, triggers, extended statistics, publications, sizes). Each hidden thing is
 * checked in the server's own description too, so the test fails if a filter stops filtering.
 */
let db: TestDatabase;
let proxy: TestProxy;
let url: string;

beforeAll(async () => {
  await loadParser();
  db = await createTestDatabase('catalog_describe');
  await db.sql(readFileSync('src/demo/seed.sql', 'utf8'));
  await db.sql(`
    CREATE INDEX customers_ssn_idx ON customers (ssn);
    ALTER TABLE customers ADD CONSTRAINT customers_ssn_shape CHECK (ssn ~ '^[0-9-]+$');
    ALTER TABLE internal_notes ADD COLUMN customer_ref bigint REFERENCES customers (id);
    COMMENT ON TABLE customers IS 'people we sell to';
    COMMENT ON COLUMN customers.email IS 'contact address';
    COMMENT ON COLUMN customers.ssn IS 'tax id of record';
    COMMENT ON TABLE internal_notes IS 'secret notes';
    CREATE FUNCTION public.audit_secret_fn() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
    CREATE TRIGGER orders_audit_secret BEFORE UPDATE ON orders
      FOR EACH ROW EXECUTE FUNCTION public.audit_secret_fn();
    CREATE POLICY orders_secret_policy ON orders USING (org_id <> 'internal_notes_only');
    CREATE STATISTICS orders_secret_stats ON org_id, status FROM orders;
    SET client_min_messages = error;
    CREATE PUBLICATION secret_pub FOR TABLE orders;
    CREATE SCHEMA hidden_schema;
    CREATE TYPE hidden_schema.globex_status AS ENUM ('churning', 'acquired_by_acme');
    CREATE DOMAIN hidden_schema.globex_ssn AS text;
    CREATE COLLATION hidden_schema.globex_coll FROM "C";
    CREATE DOMAIN hidden_schema.globex_discount AS numeric CONSTRAINT globex_discount_cap CHECK (VALUE <= 0.35);
    CREATE DOMAIN public.positive_qty AS int CONSTRAINT positive_qty_check CHECK (VALUE > 0);
    CREATE SCHEMA shared_types;
    CREATE TYPE shared_types.grade AS ENUM ('standard', 'premium');
    ALTER TABLE products ADD COLUMN grade shared_types.grade;
    ANALYZE orders;
    CREATE TABLE public.readings (id int, org_id text NOT NULL, at date) PARTITION BY RANGE (at);
    CREATE TABLE public.readings_2026 PARTITION OF public.readings
      FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
  `);
  ({ proxy, url } = await startDemoRulesProxy(db));
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

const psql = async (target: string, cmd: string): Promise<string> =>
  (await run('psql', [target, '-XAc', cmd], { env: { ...process.env, PGSSLMODE: 'disable' } })).stdout;

const withClient = <T>(f: (c: pg.Client) => Promise<T>): Promise<T> => withPgClient(url, f);

describe("psql's \\d", () => {
  it('describes a listed table with its visible columns, keys, indexes, comments and the tables that reference it', async () => {
    const direct = await psql(db.url, '\\d+ customers');
    const seen = await psql(url, '\\d+ customers');
    // The server shows the hidden column, its comment, index and check, and the unlisted table
    // that references customers ...
    const hidden = ['ssn', 'tax id of record', 'customers_ssn_idx', 'customers_ssn_shape', 'internal_notes'];
    for (const h of hidden) expect(direct, h).toContain(h);
    // ... pgwarden shows none of them, and nothing the server would not.
    for (const h of hidden) expect(seen, h).not.toContain(h);
    const directLines = new Set(direct.split('\n'));
    for (const line of seen.split('\n')) expect(directLines, line).toContain(line);
    expect(seen.split('\n')).toEqual(
      expect.arrayContaining([
        'email|text||not null||extended|||contact address',
        '    "customers_pkey" PRIMARY KEY, btree (id)',
        'Referenced by:',
        '    TABLE "orders" CONSTRAINT "orders_customer_id_fkey" FOREIGN KEY (customer_id) REFERENCES customers(id)',
      ]),
    );
  });

  it('tells agents of no policies, triggers, extended statistics or publications', async () => {
    const direct = await psql(db.url, '\\d+ orders');
    const seen = await psql(url, '\\d+ orders');
    const untold = ['orders_secret_policy', 'orders_audit_secret', 'orders_secret_stats', 'secret_pub'];
    for (const name of untold) expect(direct, name).toContain(name);
    for (const name of untold) expect(seen, name).not.toContain(name);
    expect(seen).toContain('"orders_customer_id_fkey" FOREIGN KEY (customer_id) REFERENCES customers(id)');
    expect(seen).toContain('TABLE "order_items" CONSTRAINT "order_items_order_id_fkey"');
  });

  it("\\dt+ lists the tables without their sizes: a tenant's table holds every tenant's rows", async () => {
    const direct = await psql(db.url, '\\dt+ orders');
    const seen = await psql(url, '\\dt+ orders');
    expect(direct).toMatch(/public\|orders\|table\|[^|]*\|permanent\|heap\|\d+ [kM]?B\|/);
    expect(seen).toMatch(/public\|orders\|table\|[^|]*\|permanent\|heap\|\|/);
  });
});

describe('the catalog functions psql calls', () => {
  it('never tell of a hidden object; the server itself does', async () => {
    // OIDs are counted cluster-wide: other tests' objects push these past any fixed range.
    const [range] = await db.sql<{ lo: number; hi: number }>(
      `SELECT min(oid)::int - 10 AS lo, max(oid)::int + 10 AS hi FROM pg_class WHERE relname IN ('customers', 'internal_notes')`,
    );
    const { lo, hi } = range!;
    const probes: [string, string][] = [
      ['comment on a hidden column', `SELECT pg_catalog.col_description('customers'::regclass, 5) AS v`],
      [
        'comment on an unlisted table, by OID scan',
        `SELECT string_agg(obj_description(o::oid, 'pg_class'), ',') AS v FROM generate_series(${lo}, ${hi}) o`,
      ],
      [
        'comment by the one-argument form',
        `SELECT string_agg(obj_description(o::oid), ',') AS v FROM generate_series(${lo}, ${hi}) o`,
      ],
      ['a hidden schema by name', `SELECT 'hidden_schema'::regnamespace::text AS v`],
      [
        'a hidden schema by OID',
        `SELECT (SELECT oid FROM pg_namespace WHERE oid = 2200)::regnamespace::text AS v`,
      ],
      [
        'a trigger definition',
        `SELECT string_agg(pg_catalog.pg_get_triggerdef(oid), ',') AS v FROM pg_trigger`,
      ],
      [
        'whether an unlisted table could be published',
        `SELECT pg_relation_is_publishable('internal_notes')::text AS v`,
      ],
      ['the size of a table', `SELECT pg_table_size('orders')::text AS v`],
      ['the size of a hidden table', `SELECT pg_total_relation_size('internal_notes')::text AS v`],
      ['roles', `SELECT string_agg(rolname, ',') AS v FROM pg_roles`],
      [
        'a partition of an unlisted table',
        `SELECT string_agg(r::text, ',') AS v FROM pg_partition_ancestors('readings_2026') r`,
      ],
    ];
    // The server's own answers (pg_namespace 2200 is public: visible, so it is the look-alike).
    const directAnswers = await Promise.all(
      probes.map(async ([, sql]) => (await db.sql<{ v: string | null }>(sql))[0]?.v ?? null),
    );
    expect(directAnswers).toEqual([
      'tax id of record',
      expect.stringContaining('secret notes'),
      expect.stringContaining('secret notes'),
      'hidden_schema',
      'public',
      expect.stringContaining('orders_audit_secret'),
      'true',
      expect.stringMatching(/^\d+$/),
      expect.stringMatching(/^\d+$/),
      expect.stringContaining('postgres'),
      expect.stringMatching(/readings_2026,\d+|readings/),
    ]);
    await withClient(async (c) => {
      const seen = [];
      for (const [, sql] of probes) seen.push((await c.query<{ v: string | null }>(sql)).rows[0]?.v ?? null);
      // The comment on customers is one agents may read: the scans find it, and only it.
      const visible = 'people we sell to';
      expect(seen).toEqual([null, visible, visible, null, 'public', null, null, null, null, null, null]);
    });
  });

  it('answer for what the rules name (the look-alikes)', async () => {
    await withClient(async (c) => {
      const r = await c.query<Record<string, string | null>>(`SELECT
          pg_catalog.col_description('customers'::regclass, 4) AS email_comment,
          pg_catalog.obj_description('customers'::regclass, 'pg_class') AS table_comment,
          'public'::regnamespace::text AS schema,
          pg_relation_is_publishable('orders')::text AS publishable,
          (SELECT count(*) FROM pg_catalog.pg_partition_ancestors('orders'))::int AS ancestors`);
      expect(r.rows[0]).toEqual({
        email_comment: 'contact address',
        table_comment: 'people we sell to',
        schema: 'public',
        publishable: 'true',
        ancestors: 0,
      });
      // A cast in the select list reads as the name the server prints, under the server's column name.
      const named = await c.query(`SELECT 'orders'::regclass, c.oid::pg_catalog.regclass FROM pg_class c
        WHERE c.oid = 'customers'::regclass`);
      expect(named.fields.map((f) => f.name)).toEqual(['regclass', 'oid']);
      expect(named.rows).toEqual([{ regclass: 'orders', oid: 'customers' }]);
      const ancestors = await c.query(`SELECT pg_catalog.pg_partition_ancestors('orders')`);
      expect(ancestors.fields.map((f) => f.name)).toEqual(['pg_partition_ancestors']);
    });
  });

  it("show no type, enum label, collation or domain check of a schema agents do not see, nor a table's row count (red team, rounds 23 and 24)", async () => {
    const probes = [
      `SELECT string_agg(typname, ',' ORDER BY typname) AS v FROM pg_type WHERE typname LIKE 'globex%'`,
      `SELECT string_agg(oid::regtype::text, ',' ORDER BY oid) AS v FROM pg_type WHERE typname LIKE 'globex%'`,
      `SELECT string_agg(format_type(oid, NULL), ',' ORDER BY oid) AS v FROM pg_type WHERE oid >= 16384`,
      `SELECT string_agg(enumlabel, ',' ORDER BY enumlabel) AS v FROM pg_enum`,
      `SELECT string_agg(collname, ',' ORDER BY collname) AS v FROM pg_collation WHERE oid >= 16384`,
      `SELECT reltuples::int::text AS v FROM pg_class WHERE relname = 'orders'`,
      `SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), ',' ORDER BY conname) AS v FROM pg_constraint WHERE conrelid = 0 AND oid >= 16384`,
    ];
    const direct = [];
    for (const sql of probes) direct.push((await db.sql<{ v: string | null }>(sql))[0]?.v ?? null);
    expect(direct[0]).toBe('globex_discount,globex_ssn,globex_status');
    expect(direct[1]).toContain('hidden_schema.globex_status');
    expect(direct[2]).toContain('hidden_schema.globex_ssn');
    expect(direct[3]).toContain('acquired_by_acme');
    expect(direct[4]).toBe('globex_coll');
    expect(direct[5]).toBe('30');
    expect(direct[6]).toContain('globex_discount_cap CHECK ((VALUE <= 0.35))');
    await withClient(async (c) => {
      const seen = [];
      for (const sql of probes) seen.push((await c.query<{ v: string | null }>(sql)).rows[0]?.v ?? null);
      expect(seen[0]).toBeNull();
      expect(seen[1]).toBeNull();
      expect(seen[2]).not.toMatch(/globex|hidden_schema/);
      // The look-alike: the enum of a visible column, in a schema of its own, keeps its labels.
      expect(seen[3]).toBe('premium,standard');
      expect(seen[2]).toContain('shared_types.grade');
      expect(seen[4]).toBeNull();
      expect(seen[5]).toBe('-1');
      // A domain's check goes with the domain (red team, round 24): public's is shown, the hidden one's not.
      expect(seen[6]).toBe('positive_qty_check CHECK ((VALUE > 0))');
    });
  });

  it('a function read as NULL keeps its parameters: the server still infers their types', async () => {
    await withClient(async (c) => {
      const r = await c.query('SELECT pg_table_size($1) AS s, $2::int AS n', ['orders', 5]);
      expect(r.rows).toEqual([{ s: null, n: 5 }]);
    });
  });

  it('give no regclass for an untyped literal beside pg_partition_ancestors to take (round 14)', async () => {
    const sql = (name: string): string => `SELECT pg_partition_ancestors('orders') UNION SELECT '${name}'`;
    const answer = (q: Promise<unknown[]>, name: string): Promise<string> =>
      q.then(
        (rows) => JSON.stringify(rows).replaceAll(name, '<name>'),
        (e: Error) => e.message.replaceAll(name, '<name>'),
      );
    // The server looks the literal up as a relation: it names the hidden one, and raises for a missing one.
    expect(await answer(db.sql(sql('internal_notes')), 'internal_notes')).not.toBe(
      await answer(db.sql(sql('no_such_rel')), 'no_such_rel'),
    );
    await withClient(async (c) => {
      const q = async (name: string) => (await c.query(sql(name))).rows;
      expect(await answer(q('internal_notes'), 'internal_notes')).toBe(
        await answer(q('no_such_rel'), 'no_such_rel'),
      );
    });
  });

  it('shows a partition only the ancestors the rules list', async () => {
    const rules = await loadRules(['rules']);
    const tenantTable = { scope: 'tenant' as const, tenant_column: 'org_id', access: ['select' as const] };
    const partitionOnly = { ...rules.tables, 'public.readings_2026': tenantTable };
    const catalog = await loadCatalog(db.url, 'public');
    // Counted too: an ancestor's OID names it, whether or not the cast to regclass would.
    const sql = `SELECT count(*) || ':' || string_agg(a.relid::regclass::text, ',' ORDER BY a.depth) AS v
      FROM pg_catalog.pg_partition_ancestors('readings_2026') WITH ORDINALITY AS a(relid, depth)`;
    const cases: [typeof rules.tables, string][] = [
      [partitionOnly, '1:readings_2026'],
      [{ ...partitionOnly, 'public.readings': tenantTable }, '2:readings_2026,readings'],
    ];
    for (const [tables, expected] of cases) {
      const judge = createPolicyJudge({ ...rules, tables }, catalog, { searchPath: 'public' });
      const p = await startTestProxy(db, { judge });
      try {
        const v = await withPgClient(
          await p.url({ tenant: 'acme' }),
          async (c) => (await c.query(sql)).rows[0].v,
        );
        expect(v).toBe(expected);
      } finally {
        await p.close();
      }
    }
    expect((await db.sql<{ v: string }>(sql))[0]?.v).toBe('2:readings_2026,readings');
  });
});
