import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRulesAgainstCatalog, loadCatalog } from '../src/policy/catalog.js';
import { createPolicyJudge } from '../src/policy/engine.js';
import { loadRules } from '../src/policy/rules-load.js';
import { loadParser } from '../src/sql/parse.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { startDemoRulesProxy, startTestProxy, withPgClient, type TestProxy } from './support/proxy.js';

const run = promisify(execFile);

/**
 * The catalog functions and casts that describe objects by OID (psql's \dt, SQLAlchemy's
 * inspector) through pgwarden with the demo rules: they answer for what the filtered catalogs show
 * and read NULL for everything else. Each attack is checked against the server's own answer too,
 * so the test fails if the guard stops guarding.
 */
let db: TestDatabase;
let proxy: TestProxy;
let url: string;
let oids: Record<string, number>;

const withClient = <T>(f: (c: pg.Client) => Promise<T>): Promise<T> => withPgClient(url, f);

beforeAll(async () => {
  await loadParser();
  db = await createTestDatabase('catalog_functions');
  await db.sql(readFileSync('src/demo/seed.sql', 'utf8'));
  // Objects that only a leak would show: an index and a check on the hidden column, a role that
  // owns nothing listed, and a check on orders whose tree names attnum 5 (customers.ssn's place).
  await db.sql(`
    CREATE INDEX customers_ssn_idx ON customers (ssn);
    ALTER TABLE customers ADD CONSTRAINT customers_ssn_shape CHECK (ssn ~ '^[0-9-]+$');
    ALTER TABLE orders ADD CONSTRAINT orders_status_set CHECK (status <> '');
    ALTER TABLE internal_notes ADD CONSTRAINT internal_notes_body_set CHECK (note <> '');
    DROP ROLE IF EXISTS payroll_admin_secret; CREATE ROLE payroll_admin_secret;
    CREATE DOMAIN public.rel_name AS regclass;
    CREATE TYPE public.rel_pair AS (r regclass, n int);
    CREATE DOMAIN public.label AS text;
    CREATE DOMAIN public.oid_d AS oid;
    CREATE DOMAIN public.rel_name2 AS rel_name;
    CREATE TYPE public.rel_box AS (a rel_name);
    CREATE TYPE public.rel_range AS RANGE (subtype = regclass);
    CREATE SCHEMA private_types; CREATE TYPE private_types.mood AS ENUM ('ok');
    -- Helpers a database has and the rules do not list, callable by field notation (round 49).
    CREATE FUNCTION public.order_notes(o public.orders) RETURNS text LANGUAGE sql STABLE
      AS $$ SELECT string_agg(n.org_id || ': ' || n.note, '; ') FROM public.internal_notes n $$;
    CREATE FUNCTION public.debug_row(r anyelement) RETURNS text LANGUAGE sql
      AS $$ SELECT string_agg(ssn, ',') FROM public.customers $$;
  `);
  const rows = await db.sql<{ k: string; oid: number }>(`
    SELECT 'internal_notes' AS k, 'internal_notes'::regclass::oid::int AS oid
    UNION ALL SELECT 'customers', 'customers'::regclass::oid::int
    UNION ALL SELECT 'orders', 'orders'::regclass::oid::int
    UNION ALL SELECT 'customers_ssn_idx', 'customers_ssn_idx'::regclass::oid::int
    UNION ALL SELECT 'orders_org_id', 'orders_org_id'::regclass::oid::int
    UNION ALL SELECT 'internal_notes_type', 'internal_notes'::regtype::oid::int
    UNION ALL SELECT 'role', 'payroll_admin_secret'::regrole::oid::int
    UNION ALL SELECT c.conname, c.oid::int FROM pg_constraint c
      WHERE c.conname IN ('customers_ssn_shape', 'orders_status_set', 'internal_notes_body_set', 'orders_customer_id_fkey')`);
  oids = Object.fromEntries(rows.map((r) => [r.k, r.oid]));
  ({ proxy, url } = await startDemoRulesProxy(db));
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

describe('OID scans through the catalog functions', () => {
  it('see only the listed tables, their sequences and visible indexes; the server itself sees more', async () => {
    // OIDs are counted cluster-wide: other tests' objects push these past any fixed range.
    const [lo, hi] = [Math.min(...Object.values(oids)) - 100, Math.max(...Object.values(oids)) + 100];
    const scan = `SELECT o::int AS o FROM generate_series(${lo}, ${hi}) o WHERE pg_catalog.pg_table_is_visible(o::oid) IS NOT NULL`;
    const direct = (await db.sql<{ o: number }>(scan)).map((r) => r.o);
    expect(direct).toEqual(expect.arrayContaining([oids.internal_notes, oids.customers_ssn_idx]));
    const seen = await withClient(async (c) => (await c.query<{ o: number }>(scan)).rows.map((r) => r.o));
    expect(seen).toEqual(expect.arrayContaining([oids.orders, oids.customers, oids.orders_org_id]));
    expect(seen).not.toContain(oids.internal_notes);
    expect(seen).not.toContain(oids.customers_ssn_idx);
  });

  it('never name an unlisted table, index, constraint, type or role', async () => {
    const probes: [string, string][] = [
      ['format_type', `SELECT pg_catalog.format_type(${oids.internal_notes_type}::oid, NULL) AS v`],
      ['regclass of an OID', `SELECT ${oids.internal_notes}::oid::regclass::text AS v`],
      ['regclass of a name', `SELECT 'internal_notes'::regclass::text AS v`],
      ['regtype of a name', `SELECT 'public.internal_notes'::pg_catalog.regtype::text AS v`],
      ['index on a hidden column', `SELECT pg_catalog.pg_get_indexdef(${oids.customers_ssn_idx}::oid) AS v`],
      ['index column', `SELECT pg_catalog.pg_get_indexdef(${oids.customers_ssn_idx}::oid, 1, true) AS v`],
      [
        'check on a hidden column',
        `SELECT pg_catalog.pg_get_constraintdef(${oids.customers_ssn_shape}::oid) AS v`,
      ],
      [
        'check on an unlisted table',
        `SELECT pg_catalog.pg_get_constraintdef(${oids.internal_notes_body_set}::oid) AS v`,
      ],
      ['a role that owns nothing listed', `SELECT pg_catalog.pg_get_userbyid(${oids.role}::oid) AS v`],
      [
        'serial sequence of an unlisted table',
        `SELECT pg_catalog.pg_get_serial_sequence('internal_notes', 'id') AS v`,
      ],
      // A tree of orders read against customers: attnum 5 is status there, ssn here.
      [
        "orders' check read against customers",
        `SELECT pg_catalog.pg_get_expr(k.conbin, ${oids.customers}::oid) AS v FROM pg_catalog.pg_constraint k WHERE k.conname = 'orders_status_set'`,
      ],
    ];
    await withClient(async (c) => {
      for (const [what, sql] of probes) {
        const direct = await db.sql<{ v: string | null }>(
          sql.replaceAll('pg_catalog.pg_constraint k', 'pg_constraint k'),
        );
        // The server names the object (so this test can fail) ...
        expect(direct[0]?.v, `${what}, directly`).toMatch(/internal_notes|ssn|note|payroll_admin_secret/);
        // ... pgwarden answers NULL, as for an OID that names nothing.
        const r = await c.query<{ v: string | null }>(sql);
        expect(r.rows[0]?.v ?? null, what).toBeNull();
      }
      // A name that names nothing reads as NULL too, where the server would raise: the answer does
      // not tell a hidden relation from a missing one.
      await expect(db.sql("SELECT 'no_such_table'::regclass")).rejects.toThrow(/does not exist/);
      expect((await c.query("SELECT 'no_such_table'::regclass AS v")).rows[0].v).toBeNull();
      // A type modifier is checked once the type is found: the server names the hidden table's row
      // type for one, and answers NULL for a missing type.
      await expect(db.sql("SELECT to_regtype('internal_notes(5)')")).rejects.toThrow(/internal_notes/);
      for (const name of ['internal_notes(5)', 'no_such_type(5)', 'internal_notes'])
        expect((await c.query(`SELECT '${name}'::regtype AS v`)).rows[0].v, name).toBeNull();
      expect((await c.query(`SELECT 'numeric'::regtype::text AS v`)).rows[0].v).toBe('numeric');
      // Nor a hidden column from a missing one (the server raises for a missing column only).
      await expect(db.sql("SELECT pg_get_serial_sequence('customers', 'no_such')")).rejects.toThrow(
        /does not exist/,
      );
      for (const col of ['ssn', 'no_such'])
        expect(
          (await c.query(`SELECT pg_catalog.pg_get_serial_sequence('customers', '${col}') AS v`)).rows[0].v,
        ).toBeNull();
    });
  });

  it('give no regclass or regtype for an untyped literal or parameter beside them to take (red team, round 14)', async () => {
    // Each of these made a sibling literal or parameter a regclass, read by the server's own
    // lookup past the guard: it named the hidden table, or raised only for a missing one.
    const probes = [
      `SELECT 'customers'::regclass AS v UNION SELECT 'internal_notes'`,
      `SELECT CASE WHEN false THEN 'customers'::regclass ELSE 'internal_notes' END AS v`,
      `SELECT v FROM (VALUES ('customers'::regclass), ('internal_notes'), ('${oids.internal_notes}')) x(v)`,
      `SELECT coalesce(NULL::regclass, 'internal_notes') AS v`,
      `SELECT 'customers'::regclass IN ('internal_notes', 'customers') AS v`,
      `SELECT v FROM (VALUES (NULL::regtype), ('internal_notes'), ('_internal_notes')) x(v)`,
    ];
    const shown = (rows: Record<string, unknown>[]): string => JSON.stringify(rows);
    /** The answer to `sql` with `name` in place of internal_notes, the name itself blanked out. */
    const answer = async (
      q: (sql: string) => Promise<Record<string, unknown>[]>,
      sql: string,
      name: string,
    ) =>
      q(sql.replaceAll('internal_notes', name)).then(
        (rows) => shown(rows).replaceAll(name, '<name>'),
        (e: Error) => e.message.replaceAll(name, '<name>'),
      );
    const direct = (sql: string) => db.sql(sql);
    await withClient(async (c) => {
      const proxied = async (sql: string) => (await c.query(sql)).rows;
      for (const sql of probes) {
        // The server tells the hidden table from a missing one (so the test can fail) ...
        expect(await answer(direct, sql, 'internal_notes'), sql).not.toBe(
          await answer(direct, sql, 'no_such_rel'),
        );
        // ... through pgwarden the literal stays a string: the same answer for both.
        expect(await answer(proxied, sql, 'internal_notes'), sql).toBe(
          await answer(proxied, sql, 'no_such_rel'),
        );
      }
      // Extended protocol, the parameter's type left to the server: it took regclass from the cast.
      const bound = async (name: string): Promise<string> =>
        c.query({ text: 'SELECT coalesce(NULL::regclass, $1) AS v', values: [name] }).then(
          (r) => shown(r.rows),
          (e: Error) => e.message.replaceAll(name, '<name>'),
        );
      expect(await bound('internal_notes')).not.toMatch(/internal_notes|^\[\{"v":\d/);
      expect(await bound('internal_notes')).toBe(await bound('no_such_rel'));
    });
  });

  it('still describe what the rules name (the look-alikes)', async () => {
    await withClient(async (c) => {
      const r = await c.query<Record<string, string>>(`SELECT
          'orders'::regclass::text AS rel,
          'orders'::regclass = ${oids.orders}::oid AS rel_compares,
          ('orders'::regclass)::int AS rel_oid,
          ${oids.orders}::oid::regclass::text AS rel_by_oid,
          pg_catalog.format_type('pg_catalog.numeric'::regtype, 786438) AS numeric_type,
          pg_catalog.pg_get_constraintdef(${oids.orders_status_set}::oid) AS own_check,
          pg_catalog.pg_get_constraintdef(${oids.orders_customer_id_fkey}::oid) AS fk,
          pg_catalog.pg_get_indexdef(${oids.orders_org_id}::oid) AS index,
          pg_catalog.pg_get_serial_sequence('orders', 'id') AS seq,
          pg_catalog.pg_table_is_visible(${oids.orders}::oid)::text AS visible,
          (SELECT pg_catalog.pg_get_expr(k.conbin, k.conrelid) FROM pg_catalog.pg_constraint k
            WHERE k.conname = 'orders_status_set') AS own_tree,
          (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) FROM pg_catalog.pg_attrdef d
            JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
            WHERE d.adrelid = ${oids.orders}::oid AND a.attname = 'status') AS status_default`);
      expect(r.rows[0]).toEqual({
        rel: 'orders',
        rel_compares: true,
        rel_oid: oids.orders,
        rel_by_oid: 'orders',
        numeric_type: 'numeric(12,2)',
        own_check: "CHECK ((status <> ''::text))",
        fk: 'FOREIGN KEY (customer_id) REFERENCES customers(id)',
        index: 'CREATE INDEX orders_org_id ON public.orders USING btree (org_id)',
        seq: 'public.orders_id_seq',
        visible: 'true',
        own_tree: "(status <> ''::text)",
        status_default: "'new'::text",
      });
    });
  });
});

describe('types whose input looks names up', () => {
  it('are refused in every array form and spelling; full-text search still takes a configuration by name', async () => {
    // The attack (red team, round 15, critical): _regclass, _regrole, _regtype were neither guarded
    // nor refused, and the server looked each element up: an oracle, and OIDs turned into names.
    expect((await db.sql<{ v: string }>("SELECT '{internal_notes}'::_regclass::text AS v"))[0]!.v).toBe(
      '{internal_notes}',
    );
    await withClient(async (c) => {
      for (const sql of [
        "SELECT '{internal_notes}'::_regclass",
        "SELECT '{internal_notes}'::regclass[]",
        "SELECT ('{' || 16384 || '}')::pg_catalog._regrole::text",
        "SELECT '{internal_notes}'::_regtype",
        "SELECT '{now}'::_regproc",
        `SELECT x.a FROM jsonb_to_record('{"a": ["internal_notes"]}') AS x(a _regclass)`,
        'PREPARE p(_regclass) AS SELECT $1',
        "SELECT 'english'::regconfig",
        "SELECT '{13098}'::_regdictionary::text",
      ])
        await expect(c.query(sql), sql).rejects.toMatchObject({ code: '42501' });
      await expect(
        c.query({ text: 'SELECT $1::_regclass AS v', values: ['{internal_notes}'] }),
      ).rejects.toMatchObject({ code: '42501' });
      const fts = await c.query<{ v: string }>("SELECT to_tsvector('english', 'widgets shipped')::text AS v");
      expect(fts.rows[0]!.v).toBe("'ship':2 'widget':1");
    });
  });

  it("are refused behind the database's own domains and composite types too", async () => {
    const attacks = [
      "SELECT 'internal_notes'::rel_name::text AS v",
      "SELECT ('(internal_notes,1)'::rel_pair).r::text AS v",
      "SELECT (ARRAY['internal_notes']::public.rel_name[])[1]::text AS v",
      // Deeper (red team, round 16): a domain over that domain, a composite of it, a range.
      "SELECT 'internal_notes'::rel_name2::text AS v",
      "SELECT ('(internal_notes)'::rel_box).a::text AS v",
      "SELECT lower('[internal_notes,internal_notes]'::rel_range)::text AS v",
    ];
    await withClient(async (c) => {
      for (const sql of attacks) {
        // The server looks the name up behind the domain or the field (so the test can fail) ...
        expect((await db.sql<{ v: string }>(sql))[0]!.v, sql).toBe('internal_notes');
        await expect(c.query(sql), sql).rejects.toMatchObject({ code: '42501' });
      }
      // The look-alike: a domain over text.
      expect((await c.query("SELECT 'widget'::label AS v")).rows[0].v).toBe('widget');
    });
  });

  it('PREPARE takes built-in parameter types only, as Parse does: a domain over oid cast a bigint column as oid does', async () => {
    await withClient(async (c) => {
      for (const sql of [
        'PREPARE p1(oid_d) AS SELECT id FROM order_items WHERE id = $1',
        'PREPARE p2(public.label) AS SELECT $1',
        'PREPARE p3(oid) AS SELECT id FROM order_items WHERE id = $1',
      ])
        await expect(c.query(sql), sql).rejects.toMatchObject({ code: '42501' });
      // The look-alikes: built-in types, arrays of them.
      await c.query('PREPARE p4(bigint, text[], timestamptz) AS SELECT id FROM order_items WHERE id = $1');
    });
  });

  it("never look a name up in a schema pgwarden's role may not use: the refusal would tell that it exists", async () => {
    // A role like pgwarden's service account: not a superuser, no USAGE on the private schema.
    await db.sql(`
      CREATE SCHEMA payroll; CREATE TABLE payroll.salaries (id int GENERATED BY DEFAULT AS IDENTITY);
      DROP ROLE IF EXISTS pgw_service_cf; CREATE ROLE pgw_service_cf LOGIN PASSWORD 'pw';
      GRANT USAGE ON SCHEMA public TO pgw_service_cf;
      GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO pgw_service_cf;`);
    const service = new pg.Client({
      host: db.host,
      port: db.port,
      database: db.name,
      user: 'pgw_service_cf',
      password: 'pw',
    });
    await service.connect();
    const judge = createPolicyJudge(await loadRules(['rules']), await loadCatalog(db.url, 'public'), {
      searchPath: 'public',
    });
    const limited = await startTestProxy(db, {
      judge,
      config: {
        upstream: { host: db.host, port: db.port, database: db.name, user: 'pgw_service_cf', password: 'pw' },
      },
    });
    try {
      // The role's own lookup tells the private schema from a missing one (so the test can fail).
      await expect(service.query("SELECT to_regclass('payroll.salaries')")).rejects.toThrow(
        /permission denied/,
      );
      expect((await service.query("SELECT to_regclass('nosuch.salaries') AS v")).rows[0].v).toBeNull();
      const c = new pg.Client({ connectionString: await limited.url({ tenant: 'acme' }) });
      await c.connect();
      try {
        for (const schema of ['payroll', 'PAYROLL', '"payroll"', 'nosuch']) {
          const r = await c.query<Record<string, string | null>>(`SELECT
              '${schema.replace(/'/g, "''")}.salaries'::regclass::text AS rel,
              '${schema.replace(/'/g, "''")}.salaries'::regtype::text AS typ,
              pg_catalog.pg_get_serial_sequence('${schema.replace(/'/g, "''")}.salaries', 'id') AS seq`);
          expect(r.rows[0], schema).toEqual({ rel: null, typ: null, seq: null });
        }
        // The look-alikes: the listed tables' schema, plainly or quoted, and pg_catalog.
        const ok = await c.query<Record<string, string>>(`SELECT 'public.orders'::regclass::text AS a,
            '"public".orders'::regclass::text AS b, 'pg_catalog.int4'::regtype::text AS t`);
        expect(ok.rows[0]).toEqual({ a: 'orders', b: 'orders', t: 'integer' });
      } finally {
        await c.end();
      }
    } finally {
      await service.end();
      await limited.close();
    }
  });

  it('keep the column names the server gives them', async () => {
    await withClient(async (c) => {
      const r = await c.query(
        "SELECT 'orders'::regclass, c.oid::regclass, 'orders'::regclass::text, c.oid::regclass::varchar FROM pg_catalog.pg_class c WHERE c.relname = 'orders'",
      );
      expect(r.fields.map((f) => f.name)).toEqual(['regclass', 'oid', 'text', 'oid']);
    });
  });
});

describe('names the server looks up in other places (red team, round 16)', () => {
  /** The server's answer and pgwarden's, for a name in a schema that exists and in one that does not. */
  const both = async (c: pg.Client, sql: (schema: string) => string): Promise<string[]> => {
    const answer = (p: Promise<unknown>): Promise<string> =>
      p.then(
        () => 'ok',
        (e: Error & { code?: string }) => `${e.code}`,
      );
    return [
      await answer(db.sql(sql('private_types'))),
      await answer(db.sql(sql('no_such_schema'))),
      await answer(c.query(sql('private_types'))),
      await answer(c.query(sql('no_such_schema'))),
    ];
  };

  it('COLLATE, ORDER BY USING, text search configurations and type names take no schema agents do not know', async () => {
    await db.sql(`CREATE COLLATION private_types.c (locale = 'C');
      CREATE TEXT SEARCH CONFIGURATION private_types.cfg (COPY = pg_catalog.english)`);
    await withClient(async (c) => {
      for (const sql of [
        (s: string) => `SELECT 'a' COLLATE ${s}.c AS v`,
        (s: string) => `SELECT to_tsvector('${s}.cfg', 'widgets')::text AS v`,
        (s: string) => `SELECT NULL::${s}.mood AS v`,
      ]) {
        const [direct, directMissing, proxied, proxiedMissing] = await both(c, sql);
        // The server tells the schema that exists from the one that does not (so the test can fail) ...
        expect(direct, sql('s')).not.toBe(directMissing);
        // ... pgwarden refuses both alike.
        expect([proxied, proxiedMissing], sql('s')).toEqual(['42501', '42501']);
      }
      // An operator outside pg_catalog in ORDER BY ... USING, and inside an aggregate's ORDER BY.
      for (const sql of [
        'SELECT 1 AS v ORDER BY 1 USING OPERATOR(no_such_schema.<)',
        "SELECT string_agg(name, ',' ORDER BY name USING OPERATOR(public.<)) AS v FROM products",
      ])
        await expect(c.query(sql), sql).rejects.toMatchObject({ code: '42501' });
      for (const sql of ['SELECT get_current_ts_config()', "SELECT ts_lexize('english_stem', 'widgets')"])
        await expect(c.query(sql), sql).rejects.toMatchObject({ code: '42501' });
      await expect(
        c.query({ text: "SELECT to_tsvector($1, 'widgets') AS v", values: ['private_types.cfg'] }),
      ).rejects.toMatchObject({ code: '42501' });
      // The look-alikes.
      const ok = await c.query<Record<string, string>>(`SELECT
          'b' COLLATE "C" AS a, 'b' COLLATE pg_catalog."C" AS b,
          to_tsvector('english', 'widgets')::text AS c, to_tsvector('pg_catalog.english', 'widgets')::text AS d,
          (SELECT string_agg(name, ',' ORDER BY name USING OPERATOR(pg_catalog.>)) FROM products) AS e`);
      expect(ok.rows[0]).toEqual({
        a: 'b',
        b: 'b',
        c: "'widget':1",
        d: "'widget':1",
        e: 'Widget,Gizmo,Gadget',
      });
      expect(
        (await c.query({ text: 'SELECT to_tsvector($1)::text AS v', values: ['widgets'] })).rows[0].v,
      ).toBe("'widget':1");
    });
  });

  it('a listed table may not show a column whose values name objects: the rules are refused until it is denied', async () => {
    await db.sql(
      'CREATE TABLE public.audit_trail (id int, org_id text, rel regclass, acl aclitem[], note text)',
    );
    const catalog = await loadCatalog(db.url, 'public');
    const rules = await loadRules(['rules']);
    const listed = (columns?: { deny: string[] }) => ({
      ...rules,
      tables: {
        ...rules.tables,
        'public.audit_trail': {
          tenant_column: 'org_id',
          access: ['select' as const],
          ...(columns ? { columns: { ...columns, mask: {} } } : {}),
        },
      },
    });
    const problems = checkRulesAgainstCatalog(listed() as never, catalog);
    expect(problems).toEqual([
      expect.stringMatching(/^tables\.public\.audit_trail\.columns: column "rel" has type regclass/),
      expect.stringMatching(/^tables\.public\.audit_trail\.columns: column "acl" has type aclitem\[\]/),
    ]);
    expect(checkRulesAgainstCatalog(listed({ deny: ['rel', 'acl'] }) as never, catalog)).toEqual([]);
  });
});

describe('field notation (red team, round 49)', () => {
  it('x.f and (x).f are judged as the call f(x) they are when f is not a column: an unlisted function stays refused', async () => {
    // The server runs them: every tenant's notes and SSNs.
    const [direct] = await db.sql<{ notes: string }>('SELECT (o).order_notes AS notes FROM orders o LIMIT 1');
    expect(direct?.notes).toContain('globex');
    const attacks = [
      'SELECT order_notes(o) FROM orders o',
      'SELECT o.id, (o).order_notes FROM orders o',
      'SELECT o.order_notes FROM orders o',
      'SELECT x.debug_row FROM (SELECT 1 AS a) x',
      'WITH w AS (SELECT 1 AS a) SELECT w.debug_row FROM w',
      // Round 51: a value of any type, not only a row: any SQL as pgwarden's user, other
      // sessions' statements, other sessions ended.
      "SELECT (('SELECT to_tsvector(''simple'', ssn) FROM customers').ts_stat)",
      'SELECT (NULL::int).pg_stat_get_activity',
      'SELECT (pg_backend_pid()).pg_terminate_backend',
    ];
    await withClient(async (c) => {
      for (const sql of attacks) await expect(c.query(sql), sql).rejects.toMatchObject({ code: '42501' });
      // A table's row read by a name that is none of its columns is refused alike, whether the
      // name is an unlisted table's row type, a function, or nothing: the server's "column does not
      // exist" for the last told which exist (red team, round 54).
      const answers = await Promise.all(
        ['internal_notes', 'no_such_table', 'order_notes', 'no_such_function'].map(async (f) => {
          const e = await c.query(`SELECT o.${f} FROM orders o`).then(
            () => ({ code: 'none', message: '' }),
            (x: { code: string; message: string }) => x,
          );
          return `${e.code} ${e.message.replaceAll(f, 'F')}`;
        }),
      );
      expect(new Set(answers).size, answers.join('\n')).toBe(1);
      expect(answers[0]).toMatch(/^42501 /);
      // The look-alikes: columns by field notation, and a row's fields.
      const { rows } = await c.query<{ total: string; status: string }>(
        'SELECT (o).total, o.status FROM orders o ORDER BY o.id LIMIT 1',
      );
      expect(rows).toHaveLength(1);
      const sub = await c.query<{ a: number }>('SELECT x.a FROM (SELECT 1 AS a) x');
      expect(sub.rows).toEqual([{ a: 1 }]);
    });
  });
});

describe("pgJDBC's type lookup (red team, round 50)", () => {
  it("takes 'pg_catalog.f'::regproc, a built-in function's name, and no other regproc cast, whatever the cache learnt", async () => {
    const typeInfo = (cast: string): string =>
      `SELECT typinput=${cast} as is_array, typtype, typname, pg_type.oid FROM pg_catalog.pg_type LEFT JOIN (select ns.oid as nspoid, ns.nspname, r.r from pg_namespace as ns join ( select s.r, (current_schemas(false))[s.r] as nspname from generate_series(1, array_upper(current_schemas(false), 1)) as s(r) ) as r using ( nspname ) ) as sp ON sp.nspoid = typnamespace WHERE pg_type.oid = $1 ORDER BY sp.r, pg_type.oid DESC`;
    await withClient(async (c) => {
      // What TypeInfoCache.getSQLType sends for jsonb and jsonb[] (getObject failed on both).
      const jsonb = await c.query(typeInfo("'pg_catalog.array_in'::regproc"), [3802]);
      expect(jsonb.rows).toEqual([{ is_array: false, typtype: 'b', typname: 'jsonb', oid: 3802 }]);
      const arrays = await c.query(typeInfo("'pg_catalog.array_in'::regproc"), [3807]);
      expect(arrays.rows[0]).toMatchObject({ is_array: true, typname: '_jsonb' });
      // The look-alikes, after the same shape was allowed: a user function, an unqualified name.
      for (const cast of [
        "'public.order_notes'::regproc",
        "'array_in'::regproc",
        "'pg_catalog.order_notes'::regproc",
      ])
        await expect(c.query(typeInfo(cast), [3802]), cast).rejects.toMatchObject({ code: '42501' });
      // Beside it, integers and literals of the agent's took its type, and the server looked them
      // up as functions, by OID or by name (red team, round 54): it reaches the server as an oid.
      const scan = (cast: string): string =>
        `SELECT string_agg(v::text, ' ') AS v FROM (SELECT CASE WHEN g < 0 THEN ${cast} ELSE g END AS v FROM generate_series(16384, 16384 + 3000) g) s`;
      const direct = (await db.sql<{ v: string }>(scan("'pg_catalog.array_in'::regproc")))[0]!.v;
      expect(direct).toContain('order_notes');
      const proxied = (await c.query<{ v: string }>(scan("'pg_catalog.array_in'::regproc"))).rows[0]!.v;
      expect(proxied).toMatch(/^[0-9 ]+$/);
      const named = await c
        .query<{ v: string[] }>("SELECT ARRAY['pg_catalog.array_in'::regproc, 'no_such_function'] AS v")
        .catch((e: { code: string }) => e);
      expect(named).toMatchObject({ code: '22P02' });
    });
  });
});

describe('pg_settings', () => {
  it('shows the preset constants only: no configuration, paths or activity', async () => {
    const sql = 'SELECT name FROM pg_catalog.pg_settings ORDER BY 1';
    const all = (await db.sql<{ name: string }>(sql)).map((r) => r.name);
    expect(all).toEqual(expect.arrayContaining(['data_directory', 'shared_buffers', 'max_index_keys']));
    await withClient(async (c) => {
      const seen = (await c.query<{ name: string }>(sql)).rows.map((r) => r.name);
      expect(seen).toEqual([
        'block_size',
        'integer_datetimes',
        'max_function_args',
        'max_identifier_length',
        'max_index_keys',
        'server_encoding',
        'server_version',
        'server_version_num',
      ]);
      const filtered = await c.query(
        `SELECT count(*)::int AS n FROM pg_catalog.pg_settings WHERE 1 / (CASE WHEN name = 'data_directory' THEN 0 ELSE 1 END) = 1`,
      );
      expect(filtered.rows[0].n).toBe(8);
    });
  });
});

describe('schema discovery by real clients', () => {
  it("SQLAlchemy's inspector (LangChain's SQLDatabase) reflects the listed tables, without the hidden column", async () => {
    // Debian's python3-sqlalchemy with psycopg2 (installed by .ci/run).
    const script = [
      'import sys, json, sqlalchemy as sa',
      "eng = sa.create_engine(sys.argv[1].replace('postgres://', 'postgresql+psycopg2://'))",
      'md = sa.MetaData()',
      'md.reflect(bind=eng)',
      'insp = sa.inspect(eng)',
      'out = {t.name: {"columns": [c.name for c in t.columns], "pk": [c.name for c in t.primary_key],',
      '  "fks": sorted(str(f.column) for f in t.foreign_keys), "indexes": sorted(i.name for i in t.indexes),',
      '  "checks": sorted(c["name"] for c in insp.get_check_constraints(t.name))} for t in md.sorted_tables}',
      "out['identity'] = insp.get_columns('orders')[0].get('identity', {}).get('increment')",
      'print(json.dumps(out, sort_keys=True))',
    ].join('\n');
    const { stdout } = await run('/usr/bin/python3', ['-c', script, url]);
    const seen = JSON.parse(stdout) as Record<string, unknown>;
    expect(Object.keys(seen).sort()).toEqual(['customers', 'identity', 'order_items', 'orders', 'products']);
    expect(seen.customers).toEqual({
      columns: ['id', 'org_id', 'name', 'email'],
      pk: ['id'],
      fks: [],
      indexes: ['customers_org_id'],
      checks: [],
    });
    expect(seen.orders).toMatchObject({
      fks: ['customers.id'],
      indexes: ['orders_org_id'],
      checks: ['orders_status_set'],
    });
    expect(seen.identity).toBe(1);
  });

  it("pgJDBC's DatabaseMetaData lists tables, columns, keys and indexes, without the hidden column or its index", async () => {
    // Debian's pgJDBC and JDK (installed by .ci/run).
    const token = new URL(url).password;
    const { stdout } = await run(
      'java',
      [
        '-cp',
        process.env.PGWARDEN_JDBC_JAR ?? '/usr/share/java/postgresql.jar',
        join(import.meta.dirname, 'clients/JdbcMetadataProbe.java'),
        `jdbc:postgresql://127.0.0.1:${new URL(url).port}${new URL(url).pathname}?sslmode=disable`,
        'java-agent',
        decodeURIComponent(token),
      ],
      { timeout: 60_000 },
    );
    expect(stdout.trim().split('\n')).toEqual([
      'tables customers,order_items,orders,products',
      'columns id,org_id,name,email',
      'primary key id',
      'imported keys customers',
      // customers_ssn_idx is on the hidden column: not listed.
      'indexes customers_pkey,customers_org_id',
    ]);
  });

  it('asyncpg reads the types it does not know (an enum, a domain, an array of the enum) through the filtered catalogs', async () => {
    await db.sql(`CREATE TYPE public.mood AS ENUM ('sad', 'ok');
      CREATE DOMAIN public.positive AS int CHECK (VALUE > 0);
      CREATE TABLE public.tickets (id int, org_id text, m mood, n positive, tags mood[]);
      INSERT INTO public.tickets VALUES (1, 'acme', 'ok', 3, '{ok,sad}'), (2, 'globex', 'sad', 4, '{}')`);
    const rules = await loadRules(['rules']);
    const judge = createPolicyJudge(
      {
        ...rules,
        tables: {
          ...rules.tables,
          'public.tickets': { scope: 'tenant', tenant_column: 'org_id', access: ['select'] },
        },
      },
      await loadCatalog(db.url, 'public'),
      { searchPath: 'public' },
    );
    const withTickets = await startTestProxy(db, { judge });
    try {
      // Debian's python3-asyncpg (installed by .ci/run): binary results, its own type introspection.
      const script = [
        'import asyncio, sys, asyncpg',
        'async def main():',
        '    c = await asyncpg.connect(sys.argv[1], ssl=False)',
        "    print([tuple(r) for r in await c.fetch('SELECT id, m, n, tags FROM tickets ORDER BY id')])",
        '    await c.close()',
        'asyncio.run(main())',
      ].join('\n');
      const { stdout } = await run('/usr/bin/python3', [
        '-c',
        script,
        await withTickets.url({ tenant: 'acme' }),
      ]);
      expect(stdout.trim()).toBe("[(1, 'ok', 3, ['ok', 'sad'])]");
    } finally {
      for (const r of withTickets.sink.records)
        if ((r as { verdict?: string }).verdict === 'deny')
          console.log('DENY', JSON.stringify(r).slice(0, 3000));
      await withTickets.close();
    }
  });

  it("psql's \\dt, \\di and \\ds list what the rules name", async () => {
    const list = async (cmd: string): Promise<string> =>
      (await run('psql', [url, '-XAtc', cmd], { env: { ...process.env, PGSSLMODE: 'disable' } })).stdout;
    expect(await list('\\dt')).toMatch(
      /^public\|customers\|table\|.*\npublic\|order_items\|table\|.*\npublic\|orders\|table\|.*\npublic\|products\|table\|/,
    );
    const indexes = await list('\\di');
    expect(indexes).toContain('orders_org_id');
    expect(indexes).not.toContain('customers_ssn_idx');
    expect(await list('\\ds')).toContain('orders_id_seq');
    expect(await list('\\dt')).not.toContain('internal_notes');
  });
});
