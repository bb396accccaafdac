import { beforeAll, describe, expect, it } from 'vitest';
import { loadParser, parseSql } from '../sql/parse.js';
import { checkInvariant } from '../rewrite/invariant.js';
import { effectivePolicy } from './effective.js';
import { tenantFitsType } from './tenant-id.js';
import type { Catalog } from './catalog.js';
import { readCatalogSnapshot } from './catalog-snapshot.js';
import { createPolicyJudge } from './engine.js';
import { loadRules } from './rules-load.js';
import type { Rules } from './rules-schema.js';
import type { Judge, JudgeContext, Verdict } from './verdict.js';
import { freshSessionState } from './verdict.js';

let catalog: Catalog;
let rules: Rules;
let judge: Judge;

function ctx(
  tenant = 'acme',
  roles: string[] = [],
  session: Partial<JudgeContext['session']> = {},
): JudgeContext {
  return {
    identity: { human: 'h', agent: 'a', tenant, roles, tokenId: undefined, expiresAt: undefined },
    protocol: 'simple',
    session: { ...freshSessionState(), ...session },
  };
}
const sqlOf = (v: Verdict): string => (v.kind === 'rewrite' ? v.sql : `(${v.kind})`);

beforeAll(async () => {
  await loadParser();
  catalog = readCatalogSnapshot('grammar-tests/catalog.json');
  rules = await loadRules(['rules']);
  judge = createPolicyJudge(rules, catalog, { searchPath: 'public' });
});

describe('decision cache', () => {
  it("never fills a template into a rules' constant that shares a literal's place and value", () => {
    // The e-mail mask is left(email, 1) || ...: its `1` sits at offset 19 of its own parse. The
    // agent's `1` below is at offset 19 too; filling both would turn the mask into left(email, 7).
    const first = 'SELECT id, email,  1 FROM customers';
    expect(first.indexOf('1')).toBe(19);
    judge.judge(first, ctx());
    const second = sqlOf(judge.judge('SELECT id, email,  7 FROM customers', ctx()).verdict);
    expect(second).toContain('"left"(email, 1)');
    expect(second).not.toContain('"left"(email, 7)');
  });

  it("puts the next statement's literal into every copy the rewrite made of it", () => {
    // A nested read of a tenant table is fenced, and `id = 5` is copied into the fence.
    judge.judge('SELECT n FROM (SELECT count(*) AS n FROM orders WHERE id = 5) s', ctx());
    const second = judge.judge('SELECT n FROM (SELECT count(*) AS n FROM orders WHERE id = 7) s', ctx());
    expect(second.cached).toBe(true);
    expect(sqlOf(second.verdict)).not.toContain('id = 5');
    expect(sqlOf(second.verdict).match(/id = 7/g)).toHaveLength(2);
    // Reads of a parent-scoped table copy conditions into the fence; literals in another order too.
    judge.judge(`SELECT qty FROM order_items WHERE sku = 'a' AND id = 1`, ctx());
    const read = judge.judge(`SELECT qty FROM order_items WHERE sku = 'b' AND id = 2`, ctx());
    expect(read.cached).toBe(true);
    expect(sqlOf(read.verdict).match(/sku = 'b'/g)).toHaveLength(2);
    expect(sqlOf(read.verdict).match(/id = 2/g)).toHaveLength(2);
    expect(sqlOf(read.verdict)).not.toMatch(/'a'|id = 1\b/);
  });

  it('answers a repeated statement from the exact-text cache', () => {
    const a = judge.judge('SELECT id FROM orders WHERE id = $1', ctx());
    const b = judge.judge('SELECT id FROM orders WHERE id = $1', ctx());
    expect(a.cached).toBe(false);
    expect(b.cached).toBe(true);
    expect(b.verdict).toEqual(a.verdict);
  });

  it('shares one judgement between statements that differ only in literals, and re-inserts them', () => {
    const first = judge.judge("SELECT total FROM orders WHERE id = 17 AND status = 'paid'", ctx());
    const second = judge.judge("SELECT total FROM orders WHERE id = 904211 AND status = 'it''s'", ctx());
    expect(first.cached).toBe(false);
    expect(second.cached).toBe(true);
    expect(sqlOf(second.verdict)).toBe(
      "SELECT total FROM public.orders AS orders WHERE orders.org_id OPERATOR(pg_catalog.=) 'acme'::text AND id = 904211 AND status = 'it''s'",
    );
    expect(second.fingerprint).toBe(first.fingerprint);
  });

  it('never shares a judgement that depends on a literal value (tenant values) or between tenants', () => {
    judge.judge("SELECT id FROM orders WHERE org_id = 'acme'", ctx());
    const other = judge.judge("SELECT id FROM orders WHERE org_id = 'globex'", ctx());
    expect(other.cached).toBe(false);
    expect(other.verdict.kind).toBe('deny');
    expect(other.verdict.flags).toContain('cross_tenant_attempt');
    const globex = judge.judge("SELECT total FROM orders WHERE id = 5 AND status = 'x'", ctx('globex'));
    expect(sqlOf(globex.verdict)).toContain("'globex'::text");
  });

  it('does not cache verdicts that depend on session state', () => {
    expect(judge.judge('EXECUTE p(1)', ctx()).verdict.kind).toBe('deny');
    const ok = judge.judge('EXECUTE p(1)', ctx('acme', [], { preparedStatements: new Map([['p', 0]]) }));
    expect(ok.verdict.kind).toBe('allow');
  });
});

describe('roles', () => {
  it('support-lead sees real e-mail addresses, never the SSN', () => {
    expect(
      sqlOf(judge.judge('SELECT email FROM customers', ctx('acme', ['support-lead'])).verdict),
    ).toContain('SELECT id, org_id, name, email, NULL::text AS ssn FROM public.customers');
    expect(judge.judge('SELECT ssn FROM customers', ctx('acme', ['support-lead'])).verdict.kind).toBe('deny');
  });

  it('analyst is read-only and capped at 1000 rows', () => {
    const v = judge.judge('SELECT id FROM orders LIMIT 5000', ctx('acme', ['analyst'])).verdict;
    expect(sqlOf(v)).toMatch(/LIMIT LEAST\(5000, 1000\)$/);
    expect(sqlOf(judge.judge('SELECT id FROM orders', ctx('acme', ['analyst'])).verdict)).toMatch(
      /LIMIT 1000$/,
    );
    expect(v.ruleIds).toContain('roles.analyst.tables.public.orders');
    for (const sql of [
      "UPDATE orders SET status = 'x'",
      // Through the child of a table it may only read too (red team, round 56).
      'DELETE FROM order_items WHERE order_id = 1',
      "INSERT INTO order_items (order_id, sku, qty) VALUES (1, 'x', 1)",
      "UPDATE customers SET name = 'x'",
    ])
      expect(judge.judge(sql, ctx('acme', ['analyst'])).verdict.kind, sql).toBe('deny');
  });

  it('refuses a write whose RETURNING would return rows of a row-limited table uncapped (red team, round 44)', () => {
    // A role that may write, with a row limit on what it reads.
    const withCapped = createPolicyJudge(
      {
        ...rules,
        roles: {
          ...rules.roles,
          capped: { tables: { 'public.orders': { row_limit: 1000 } }, functions: [] },
        },
      },
      catalog,
      { searchPath: 'public' },
    );
    const analyst = (sql: string) => withCapped.judge(sql, ctx('acme', ['capped'])).verdict;
    for (const sql of [
      `INSERT INTO order_items (order_id, sku, qty) SELECT id, 'x', 1 FROM orders RETURNING order_id`,
      `PREPARE p AS INSERT INTO order_items (order_id, sku, qty) SELECT id, 'x', 1 FROM orders RETURNING order_id`,
      `COPY (INSERT INTO order_items (order_id, sku, qty) SELECT id, 'x', 1 FROM orders RETURNING order_id) TO STDOUT`,
      `WITH o AS (SELECT id FROM orders) INSERT INTO order_items (order_id, sku, qty) SELECT id, 'x', 1 FROM o RETURNING order_id`,
    ]) {
      const v = analyst(sql);
      expect(v.kind, sql).toBe('deny');
      expect(v.reasons, sql).toContain('row_limit');
    }
    // The look-alikes: the same writes without RETURNING, RETURNING of a write that reads no
    // row-limited table, and the same RETURNING for a role without a row limit.
    expect(
      analyst(`INSERT INTO order_items (order_id, sku, qty) SELECT id, 'x', 1 FROM orders`).kind,
    ).not.toBe('deny');
    expect(
      analyst(`INSERT INTO order_items (order_id, sku, qty) VALUES (1, 'x', 1) RETURNING id`).kind,
    ).not.toBe('deny');
    expect(
      judge.judge(
        `INSERT INTO order_items (order_id, sku, qty) SELECT id, 'x', 1 FROM orders RETURNING order_id`,
        ctx('acme'),
      ).verdict.kind,
    ).not.toBe('deny');
  });
});

describe('engine', () => {
  it('scopes a non-text tenant column with a cast to its type and refuses tenants of the wrong shape', () => {
    const cols = [
      { name: 'id', type: 'int8', sqlType: 'bigint', position: 1, notNull: true, hasDefault: true },
      { name: 'tenant_no', type: 'int4', sqlType: 'integer', position: 2, notNull: true, hasDefault: false },
    ];
    const cat: Catalog = {
      ...catalog,
      relations: {
        ...catalog.relations,
        public: { tickets: { schema: 'public', name: 'tickets', kind: 'r', columns: cols } },
      },
    };
    const j = createPolicyJudge(
      {
        version: 1,
        tenant: { claim: 'tenant' },
        tables: {
          'public.tickets': { scope: 'tenant', tenant_column: 'tenant_no', access: ['select', 'insert'] },
        },
      },
      cat,
      { searchPath: 'public' },
    );
    expect(sqlOf(j.judge('SELECT * FROM tickets', ctx('42')).verdict)).toBe(
      "SELECT * FROM public.tickets AS tickets WHERE tickets.tenant_no OPERATOR(pg_catalog.=) '42'::int",
    );
    const ins = j.judge('INSERT INTO tickets (tenant_no) VALUES ($1)', ctx('42')).verdict;
    expect(ins.kind === 'allow' && ins.paramChecks).toEqual([
      { index: 1, equals: '42', type: 'int4', message: "public.tickets.tenant_no must be your tenant '42'" },
    ]);
    expect(j.judge('SELECT * FROM tickets', ctx('acme')).verdict).toMatchObject({
      kind: 'deny',
      reasons: ['tenant_type_mismatch'],
    });
    // Only the form the server prints: 042 was tenant 42 here and another tenant in a text table;
    // 4294967296 failed every statement at run time (red team, round 44).
    for (const tenant of ['042', '-0', '+42', ' 42', '4294967296', '2147483648'])
      expect(j.judge('SELECT * FROM tickets', ctx(tenant)).verdict.reasons, tenant).toEqual([
        'tenant_type_mismatch',
      ]);
    for (const tenant of ['0', '-7', '2147483647', '-2147483648'])
      expect(j.judge('SELECT * FROM tickets', ctx(tenant)).verdict.kind, tenant).toBe('rewrite');
  });

  it('takes tenant ids for uuid and char(n) tenant columns only in the form the server prints', () => {
    expect(tenantFitsType('0e9c4c4e-3f43-4a3e-9a59-0c7b0f8e1d2a', 'uuid')).toBe(true);
    expect(tenantFitsType('0E9C4C4E-3F43-4A3E-9A59-0C7B0F8E1D2A', 'uuid')).toBe(false);
    expect(tenantFitsType('0e9c4c4e3f434a3e9a590c7b0f8e1d2a', 'uuid')).toBe(false);
    expect(tenantFitsType('acme', 'bpchar')).toBe(true);
    expect(tenantFitsType('acme ', 'bpchar')).toBe(false);
    expect(tenantFitsType('acme ', 'text')).toBe(true);
    expect(tenantFitsType('99999999999999999999', 'numeric')).toBe(true);
    expect(tenantFitsType('9223372036854775808', 'int8')).toBe(false);
    expect(tenantFitsType('-9223372036854775808', 'int8')).toBe(true);
  });

  it('denies with PGW_INTERNAL instead of throwing when something breaks inside', () => {
    const broken = createPolicyJudge(rules, { ...catalog, relations: {} }, { searchPath: 'public' });
    const j = broken.judge('SELECT * FROM orders', ctx());
    expect(j.verdict).toMatchObject({ kind: 'deny', code: 'PGW_INTERNAL' });
  });

  it('refuses an INSERT whose columns and values differ in number as the server does, not as an internal error', () => {
    for (const sql of [
      'INSERT INTO orders (total, org_id) SELECT 1',
      "INSERT INTO order_items (sku, qty, order_id) SELECT 'x', 1",
      "INSERT INTO orders (total) VALUES (1, 'globex')",
      'INSERT INTO orders (total) VALUES (1), (2, 3)',
    ])
      expect(judge.judge(sql, ctx()).verdict, sql).toMatchObject({
        kind: 'deny',
        reasons: expect.arrayContaining(['insert_width']),
      });
  });

  it('refuses OVERRIDING SYSTEM VALUE (identity values are shared by every tenant); OVERRIDING USER VALUE runs', () => {
    for (const sql of [
      'INSERT INTO orders (id, total) OVERRIDING SYSTEM VALUE VALUES (999, 1)',
      'MERGE INTO orders o USING (SELECT 1 AS x) s ON false WHEN NOT MATCHED THEN INSERT (id, total) OVERRIDING SYSTEM VALUE VALUES (999, 1)',
    ])
      expect(judge.judge(sql, ctx()).verdict, sql).toMatchObject({
        kind: 'deny',
        reasons: expect.arrayContaining(['option_not_allowed']),
      });
    expect(
      judge.judge('INSERT INTO orders (id, total) OVERRIDING USER VALUE VALUES (999, 1)', ctx()).verdict.kind,
    ).toBe('rewrite');
  });

  it('refuses a token without a tenant and unparseable SQL', () => {
    expect(judge.judge('SELECT 1', ctx('')).verdict.kind).toBe('deny');
    expect(judge.judge('SELEC 1', ctx()).verdict).toMatchObject({ kind: 'deny', code: 'PGW_SYNTAX_ERROR' });
  });

  it('records session effects for PREPARE, DECLARE and DEALLOCATE, one per statement', () => {
    expect(judge.judge('PREPARE q AS SELECT 1', ctx()).verdict).toMatchObject({
      effects: [{ statement: 0, prepare: 'q' }],
    });
    expect(judge.judge('DECLARE c CURSOR FOR SELECT id FROM orders', ctx()).verdict).toMatchObject({
      kind: 'rewrite',
      effects: [{ statement: 0, declareCursor: 'c' }],
    });
    expect(judge.judge('DEALLOCATE ALL', ctx()).verdict).toMatchObject({
      effects: [{ statement: 0, deallocate: { all: true } }],
    });
    // Every statement of the message keeps its own effect (the first PREPARE was once overwritten).
    const many = judge.judge('PREPARE w AS SELECT 1; SELECT 2; DEALLOCATE x; PREPARE z AS SELECT 3', ctx());
    expect(many.verdict).toMatchObject({
      effects: [
        { statement: 0, prepare: 'w' },
        { statement: 2, deallocate: 'x' },
        { statement: 3, prepare: 'z' },
      ],
    });
    expect(judge.judge('SELECT 1', ctx()).verdict).not.toHaveProperty('effects');
  });

  it("keeps each PREPARE's and DECLARE's own text and what is forwarded for it, multibyte text included", () => {
    const v = judge.judge(
      `SELECT 'é€' AS a; PREPARE z AS SELECT 'ü' AS x; DECLARE c CURSOR FOR SELECT id FROM orders`,
      ctx(),
    ).verdict;
    expect(v).toMatchObject({
      kind: 'rewrite',
      effects: [
        {
          statement: 1,
          prepare: 'z',
          source: { sql: `PREPARE z AS SELECT 'ü' AS x`, forwarded: `PREPARE z AS SELECT 'ü' AS x` },
        },
        {
          statement: 2,
          declareCursor: 'c',
          source: {
            sql: 'DECLARE c CURSOR FOR SELECT id FROM orders',
            forwarded: expect.stringContaining(`orders.org_id OPERATOR(pg_catalog.=) 'acme'::text`),
          },
        },
      ],
    });
  });

  it("rewrites a COPY with old-style options (psql's \\copy ... with csv header), which was refused as unfaithful", () => {
    const v = judge.judge('COPY (SELECT id, total FROM orders) TO STDOUT WITH CSV HEADER', ctx()).verdict;
    expect(v.kind).toBe('rewrite');
    expect(sqlOf(v)).toMatch(/TO STDOUT WITH CSV HEADER$/);
  });

  it('keeps a PREPARE the rewrite left alone as written, even when another statement of its message was rewritten', () => {
    const v = judge.judge('SELECT id FROM orders; prepare y as select 1', ctx()).verdict;
    expect(v).toMatchObject({
      kind: 'rewrite',
      effects: [
        { prepare: 'y', source: { sql: 'prepare y as select 1', forwarded: 'prepare y as select 1' } },
      ],
    });
  });

  it('refuses a decimal or exponent number as the tenant of a text column: it is written as its value', () => {
    // The tenant `.5`: the server writes '0.5', and `1e3` '1000' (red team, round 40).
    for (const [tenant, value] of [
      ['.5', '.5'],
      ['1e3', '1e3'],
      ['5.', '5.'],
    ]) {
      const insert = judge.judge(
        `INSERT INTO orders (org_id, customer_id, total, status) VALUES (${value}, 1, 1, 'x')`,
        ctx(tenant),
      ).verdict;
      expect(insert).toMatchObject({
        kind: 'deny',
        reasons: expect.arrayContaining(['tenant_value_unchecked']),
      });
      const update = judge.judge(`UPDATE orders SET org_id = ${value} WHERE id = 1`, ctx(tenant)).verdict;
      expect(update.kind).toBe('deny');
    }
    // Benign look-alikes: the tenant quoted, and a whole number (written as it is read: 7 as '7').
    const quoted = judge.judge(
      `INSERT INTO orders (org_id, customer_id, total, status) VALUES ('.5', 1, 1, 'x')`,
      ctx('.5'),
    ).verdict;
    expect(quoted.kind).not.toBe('deny');
    const whole = judge.judge(
      `INSERT INTO orders (org_id, customer_id, total, status) VALUES (7, 1, 1, 'x')`,
      ctx('7'),
    ).verdict;
    expect(whole.kind).not.toBe('deny');
  });

  it('refuses a PREPARE whose tenant value is a parameter: EXECUTE values are never checked', () => {
    const v = judge.judge(
      'PREPARE p(text) AS INSERT INTO orders (org_id, total) VALUES ($1, 1)',
      ctx(),
    ).verdict;
    expect(v).toMatchObject({
      kind: 'deny',
      reasons: expect.arrayContaining(['tenant_value_unchecked']),
      message: expect.stringContaining("write your tenant as a literal ('acme')"),
    });
    // The same statement sent by Parse keeps its Bind-time check.
    expect(
      judge.judge('INSERT INTO orders (org_id, total) VALUES ($1, 1)', { ...ctx(), protocol: 'extended' })
        .verdict,
    ).toMatchObject({ paramChecks: [{ index: 1, equals: 'acme' }] });
    // Benign: parameters elsewhere, a literal tenant, or no tenant column at all.
    for (const ok of [
      'PREPARE a(numeric) AS INSERT INTO orders (total) VALUES ($1)',
      "PREPARE b(numeric) AS INSERT INTO orders (org_id, total) VALUES ('acme', $1)",
      'PREPARE c(int) AS SELECT id FROM orders WHERE id = $1',
    ])
      expect(judge.judge(ok, ctx()).verdict.kind, ok).not.toBe('deny');
  });

  it('refuses a tenant parameter used anywhere but the tenant column: the server types it by its first use', () => {
    const ext = { ...ctx(), protocol: 'extended' as const };
    for (const attack of [
      'INSERT INTO orders (status, org_id, total) VALUES (($1::tsvector)::text, $1, 1)',
      'INSERT INTO orders (status, org_id, total) VALUES (($1::"char")::text, $1, 1)',
      'UPDATE orders SET org_id = $1 WHERE status = $1::char(2)',
      'INSERT INTO orders (org_id, total) VALUES ($1, 1) RETURNING $1::name',
    ])
      expect(judge.judge(attack, ext).verdict, attack).toMatchObject({
        kind: 'deny',
        code: 'PGW_POLICY_DENIED',
        reasons: expect.arrayContaining(['tenant_param_reused']),
        message: expect.stringMatching(
          /^\$1 is the tenant value .* use a separate parameter \(or a literal\)/,
        ),
      });
    // Benign: another parameter for the other use, or the tenant parameter only in tenant columns.
    for (const ok of [
      'INSERT INTO orders (status, org_id, total) VALUES (($2::tsvector)::text, $1, 1)',
      'INSERT INTO orders (org_id, total) VALUES ($1, 1), ($1, 2)',
      'UPDATE orders SET org_id = $1 WHERE status = $2',
    ])
      expect(judge.judge(ok, ext).verdict, ok).toMatchObject({
        paramChecks: expect.arrayContaining([expect.objectContaining({ index: 1, equals: 'acme' })]),
      });
  });

  it('reads SQL-level names as the server does: truncated to 63 bytes', () => {
    // Protocol names are not (the proxy refuses long ones); PREPARE, DECLARE and CLOSE names come
    // from PostgreSQL's own scanner, which truncates identifiers to NAMEDATALEN - 1 bytes.
    const long = 'p'.repeat(63);
    expect(judge.judge(`PREPARE ${long}xyz AS SELECT 1`, ctx()).verdict).toMatchObject({
      effects: [{ prepare: long }],
    });
    expect(
      judge.judge(`DECLARE "${long}xyz" CURSOR FOR SELECT 1; CLOSE ${long}q`, ctx()).verdict,
    ).toMatchObject({
      effects: [{ declareCursor: long }, { statement: 1, closeCursor: long }],
    });
    expect(judge.judge('CLOSE ALL', ctx()).verdict).toMatchObject({
      effects: [{ statement: 0, closeCursor: { all: true } }],
    });
  });

  it('refuses a message with more statements than maxStatements before judging them', () => {
    const sql = Array.from({ length: 6 }, (_, i) => `SELECT ${i} FROM orders`).join(';');
    expect(judge.judge(sql, { ...ctx(), maxStatements: 5 }).verdict).toMatchObject({
      kind: 'deny',
      code: 'PGW_MESSAGE_TOO_LARGE',
      reasons: ['too_many_statements'],
    });
    // Not cached: the same text under a larger limit is judged.
    expect(judge.judge(sql, { ...ctx(), maxStatements: 6 }).verdict.kind).toBe('rewrite');
  });

  it('keeps the agent parameters of a rewritten statement', () => {
    expect(sqlOf(judge.judge('SELECT id FROM orders WHERE total > $1 LIMIT $2', ctx()).verdict)).toMatch(
      /THEN total > \$1 ELSE false END LIMIT \$2$/,
    );
  });

  it('tells the agent what it may use instead', () => {
    const v = judge.judge('SELECT * FROM internal_notes', ctx()).verdict;
    expect(v.kind === 'deny' && v.message).toBe(
      'relation internal_notes is not available to agents; available: public.customers, public.order_items, public.orders, public.products',
    );
  });
});

describe('conditions copied into a parent-scoped fence', () => {
  it('never include a masked or denied column: inside the fence it would compare the raw value', () => {
    const masked = createPolicyJudge(
      {
        ...rules,
        tables: {
          ...rules.tables,
          'public.order_items': {
            ...rules.tables['public.order_items']!,
            columns: { deny: ['qty'], mask: { sku: "'SKU-?'" } },
          },
        },
      },
      catalog,
      { searchPath: 'public' },
    );
    const out = sqlOf(
      masked.judge(`SELECT id FROM order_items WHERE sku = 'SKU-1' AND order_id = 3`, ctx()).verdict,
    );
    const fence = out.slice(out.indexOf('( SELECT'), out.indexOf('OFFSET 0'));
    expect(fence).toContain("'SKU-?' AS sku");
    expect(fence).toContain('order_id = 3');
    expect(fence).not.toContain("sku = 'SKU-1'");
    expect(out).toMatch(/\) AS order_items WHERE sku = 'SKU-1' AND order_id = 3$/);
  });
});

describe('catalog description functions', () => {
  const describeQuery =
    "SELECT c.relname FROM pg_catalog.pg_class c WHERE pg_catalog.pg_table_is_visible(c.oid) AND c.relkind = 'r'";
  /** The guarded form: the arguments evaluated once, the call made only when they pass the guard. */
  const guarded = (fn: string, guard: RegExp): RegExp =>
    new RegExp(
      `\\(SELECT pg_catalog\\.${fn}\\(s\\.a1[^)]*\\) FROM \\( SELECT .* OFFSET 0 \\) AS s WHERE ${guard.source}`,
    );

  it('are called only on what the filtered catalogs show: the OID scans of earlier red teams read NULL past them', () => {
    // Each was an attack while the functions ran on any OID (pg_table_is_visible is true or NULL by
    // whether a relation has the OID, format_type names every table's row type, pg_get_expr read a
    // CHECK's tree against an unlisted table): the proxy tests show the answers, here the form.
    const cases: [string, string, RegExp][] = [
      [describeQuery, 'pg_table_is_visible', /s\.a1 IN \(SELECT g\.oid FROM \( SELECT oid, relname/],
      [
        'SELECT o FROM generate_series(16384, 17000) o WHERE pg_catalog.pg_type_is_visible(o::oid)',
        'pg_type_is_visible',
        /s\.a1 IN \(SELECT g\.oid FROM \( SELECT oid, typname/,
      ],
      [
        'SELECT pg_catalog.format_type(o::oid, NULL) FROM generate_series(16384, 17000) o',
        'format_type',
        /s\.a1 IN \(SELECT g\.oid FROM \( SELECT oid, typname/,
      ],
      [
        'SELECT pg_catalog.pg_get_indexdef(o::oid) FROM generate_series(16384, 17000) o',
        'pg_get_indexdef',
        /s\.a1 IN \(SELECT g\.indexrelid FROM \( SELECT /,
      ],
      [
        'SELECT pg_catalog.pg_get_constraintdef(o::oid) FROM generate_series(16384, 17000) o',
        'pg_get_constraintdef',
        /s\.a1 IN \(SELECT g\.oid FROM \( SELECT \* FROM pg_catalog\.pg_constraint /,
      ],
      [
        'SELECT pg_catalog.pg_get_expr(c.relpartbound, 16454::oid) FROM pg_catalog.pg_class c',
        'pg_get_expr',
        /\(CAST\(s\.a1 AS pg_catalog\.text\), s\.a2\) IN \(+SELECT CAST\(g\.adbin AS pg_catalog\.text\), g\.adrelid/,
      ],
    ];
    for (const [sql, fn, guard] of cases) {
      const v = judge.judge(sql, ctx()).verdict;
      expect(v, sql).toMatchObject({ kind: 'rewrite', reasons: expect.arrayContaining(['introspection']) });
      expect(sqlOf(v), sql).toMatch(guarded(fn, guard));
    }
  });

  it('evaluate what the agent passes once, so a value that changes cannot pass the guard and then the call', () => {
    const v = judge.judge('SELECT pg_catalog.format_type((random() * 20000)::int::oid, NULL)', ctx()).verdict;
    // random() stands once, inside the fenced subquery; the call reads its column.
    expect(sqlOf(v).match(/random\(\)/g)).toHaveLength(1);
    expect(sqlOf(v)).toMatch(
      /SELECT pg_catalog\.format_type\(s\.a1, s\.a2\) FROM \( SELECT CAST\(.*random\(\).* OFFSET 0 \) AS s/,
    );
  });

  it('read a regclass or regtype cast as an OID, or as text when cast on to text: never a type a sibling literal could take', () => {
    const out = (sql: string): string => sqlOf(judge.judge(sql, ctx()).verdict);
    // In the select list of a plain top-level SELECT the cast prints the name, as the server would.
    expect(out("SELECT 'orders'::regclass")).toMatch(
      /^SELECT CAST\(\(SELECT CAST\(CAST\(s\.o AS pg_catalog\.regclass\) AS pg_catalog\.text\) .* AS pg_catalog\.text\) AS regclass$/,
    );
    expect(out("SELECT * FROM (SELECT 'orders'::regclass) s")).toMatch(
      /^SELECT \* FROM \( SELECT \(SELECT s\.o AS regclass FROM /,
    );
    expect(out("SELECT 'orders'::regclass UNION SELECT 1")).toMatch(
      /^SELECT \(SELECT s\.o AS regclass FROM /,
    );
    expect(out("SELECT 'orders'::regclass::text")).toMatch(
      /^SELECT CAST\(\(SELECT CAST\(CAST\(s\.o AS pg_catalog\.regclass\) AS pg_catalog\.text\) AS text FROM .*\) AS text\)$/,
    );
    expect(out("SELECT 'numeric'::pg_catalog.regtype::varchar(20)")).toMatch(
      /AS pg_catalog\.regtype\) AS pg_catalog\.text\)/,
    );
    // Only a cast to text prints the name: to another type the value stays an OID.
    expect(out("SELECT 'orders'::regclass::oid")).not.toMatch(/AS pg_catalog\.regclass\)/);
  });

  it("allow information_schema._pg_expandarray (pgJDBC numbers index keys with it), not the schema's other functions", () => {
    expect(
      judge.judge('SELECT (information_schema._pg_expandarray(ARRAY[3, 1])).n', ctx()).verdict.kind,
    ).toBe('allow');
    for (const sql of [
      'SELECT information_schema._pg_truetypid(NULL, NULL)',
      'SELECT information_schema._pg_char_max_length(25::oid, 1)',
      'SELECT _pg_expandarray(ARRAY[1])',
    ])
      expect(judge.judge(sql, ctx()).verdict.kind, sql).toBe('deny');
  });

  it("judge each text search configuration literal: an allowed one's verdict is not reused for a private schema's", () => {
    expect(judge.judge("SELECT to_tsvector('english', name) FROM products", ctx()).verdict.kind).not.toBe(
      'deny',
    );
    expect(judge.judge("SELECT to_tsvector('private.cfg', name) FROM products", ctx()).verdict).toMatchObject(
      {
        kind: 'deny',
        message: expect.stringContaining('private.cfg'),
      },
    );
  });

  it('are capped per statement: each carries the filtered catalogs, some kilobytes of SQL', () => {
    const calls = (n: number): string =>
      `SELECT ${Array.from({ length: n }, (_, i) => `pg_catalog.format_type(${i}::oid, NULL)`).join(', ')}`;
    expect(judge.judge(calls(64), ctx()).verdict.kind).toBe('rewrite');
    expect(judge.judge(calls(65), ctx()).verdict).toMatchObject({
      kind: 'deny',
      reasons: expect.arrayContaining(['too_many_catalog_calls']),
    });
  });

  it('that describe other objects by OID, or stand where no subquery may, stay refused', () => {
    for (const sql of [
      'SELECT pg_catalog.shobj_description(1, 2, 3)',
      'SELECT * FROM ROWS FROM (pg_catalog.pg_partition_ancestors(1), generate_series(1, 2))',
      "SELECT 'public'::regrole",
      'SELECT * FROM pg_catalog.pg_get_userbyid(10)',
      'SELECT pg_catalog.pg_table_is_visible(VARIADIC ARRAY[1259::oid])',
      'SELECT pg_catalog.format_type(1259::oid)',
      "SELECT pg_catalog.to_regclass('internal_notes')",
      "SELECT '{internal_notes}'::regclass[]",
    ])
      expect(judge.judge(sql, ctx()).verdict, sql).toMatchObject({ kind: 'deny' });
  });

  it('are refused, naming the catalog to list, when the rules do not list the catalog the guard reads', () => {
    const bare = createPolicyJudge({ ...rules, introspection: [] }, catalog, { searchPath: 'public' });
    for (const [sql, missing] of [
      ['SELECT pg_catalog.pg_table_is_visible(16454::oid)', 'pg_catalog.pg_class'],
      ['SELECT pg_catalog.format_type(25::oid, NULL)', 'pg_catalog.pg_type'],
      ["SELECT pg_catalog.pg_get_serial_sequence('orders', 'id')", 'pg_catalog.pg_attribute'],
      ["SELECT 'internal_notes'::regclass::oid", 'pg_catalog.pg_class'],
    ] as const) {
      const v = bare.judge(sql, ctx()).verdict;
      expect(v, sql).toMatchObject({ kind: 'deny', reasons: ['function_denied'] });
      expect(v.kind === 'deny' && v.message, sql).toContain(missing);
    }
    // The look-alike: with the catalogs listed, the same calls are made (guarded).
    expect(judge.judge("SELECT pg_catalog.pg_get_serial_sequence('orders', 'id')", ctx()).verdict.kind).toBe(
      'rewrite',
    );
  });

  it("cannot be widened to other built-ins through the rules' functions list", () => {
    const widened = createPolicyJudge(
      { ...rules, functions: [...(rules.functions ?? []), 'pg_catalog.pg_sleep', 'pg_catalog.set_config'] },
      catalog,
      { searchPath: 'public' },
    );
    expect(widened.judge('SELECT pg_catalog.pg_sleep(1)', ctx()).verdict.kind).toBe('deny');
    expect(
      widened.judge("SELECT pg_catalog.set_config('search_path', 'evil', false)", ctx()).verdict.kind,
    ).toBe('deny');
  });
});

describe('conditions copied beside the tenant filter', () => {
  it("hold a parameter only where it stands once in the agent's statement, and the invariant checks it", () => {
    const copied = sqlOf(
      judge.judge('SELECT i.id FROM order_items i WHERE i.sku = $2 AND i.order_id = $1', ctx()).verdict,
    );
    // Used once: `order_id = $1` is copied into the fence, for the index.
    expect(copied).toMatch(/OFFSET 0 \) AS i/);
    expect(copied.match(/order_id = \$1/g)).toHaveLength(2);
    // Used elsewhere too (round 19: `(SELECT $1::oid) x` typed it oid): not copied.
    const kept = sqlOf(
      judge.judge(
        'SELECT x.o, i.id FROM (SELECT $1::oid AS o) x, order_items i WHERE i.sku = $2 AND i.order_id = $1',
        ctx(),
      ).verdict,
    );
    expect(kept.match(/order_id = \$1/g)).toHaveLength(1);
    // The invariant reads the copies against the agent's own counts: the first rewrite, had $1
    // stood elsewhere, would be refused.
    const stmts = parseSql(copied).stmts.map((st) => st.stmt as never);
    const policy = effectivePolicy(rules, catalog, []);
    expect(checkInvariant(stmts, policy, catalog, 'acme', [], () => true)).toBeUndefined();
    expect(checkInvariant(stmts, policy, catalog, 'acme', [], (n) => n !== 1)).toBeDefined();
  });
});

describe('statements nested too deep', () => {
  it('are refused at once (54001), before the rewriter walks them; shallower ones are judged', () => {
    const nested = (n: number): string => {
      let s = 'SELECT order_id FROM order_items WHERE qty = 1';
      for (let i = 0; i < n; i++) s = `SELECT order_id FROM order_items WHERE order_id IN (${s})`;
      return s;
    };
    const sum = (n: number): string =>
      `SELECT total FROM orders WHERE id = ${Array(n).fill('1').join(' + ')}`;
    // The attacks: 1,000 nested subqueries took 4.5 s to judge; a sum of 1,000 terms overflowed
    // the stack (an internal error).
    for (const sql of [nested(1000), sum(1000)])
      expect(judge.judge(sql, ctx()).verdict, sql.slice(0, 60)).toMatchObject({
        kind: 'deny',
        code: 'PGW_TOO_COMPLEX',
        reasons: ['too_deep'],
      });
    // The benign look-alikes: deep, but within the limit.
    for (const sql of [nested(20), sum(100)]) expect(judge.judge(sql, ctx()).verdict.kind).toBe('rewrite');
  });
});

describe('settings with restricted values', () => {
  it("judges each value of client_min_messages: an allowed one's verdict is not reused for another of the same shape", () => {
    const fresh = createPolicyJudge(rules, catalog, { searchPath: 'public' });
    expect(fresh.judge("SET client_min_messages TO 'error'", ctx()).verdict.kind).toBe('allow');
    expect(fresh.judge("SET client_min_messages TO 'error'", ctx()).verdict.kind).toBe('allow');
    expect(fresh.judge("SET client_min_messages TO 'debug5'", ctx()).verdict).toMatchObject({
      kind: 'deny',
      reasons: ['setting_not_allowed'],
    });
    expect(fresh.judge("SET client_min_messages TO 'NOTICE'", ctx()).verdict.kind).toBe('allow');
    // A refused value is quoted only in part: the record already holds the SQL (red team, round 13).
    const long = fresh.judge(`SET client_min_messages TO '${'x'.repeat(100_000)}'`, ctx()).verdict;
    expect(long.kind === 'deny' && long.message.length).toBeLessThan(300);
  });
});

describe('ON CONFLICT ON CONSTRAINT', () => {
  it('is refused on a table with masked columns only, as on one with hidden columns; a plain table takes it', () => {
    // Round 13: ON CONFLICT (email) was refused for the mask, ON CONSTRAINT on email's key was not.
    const customers = rules.tables['public.customers']!;
    const maskedOnly = createPolicyJudge(
      {
        ...rules,
        tables: {
          ...rules.tables,
          'public.customers': { ...customers, columns: { deny: [], mask: customers.columns?.mask ?? {} } },
        },
      },
      catalog,
      { searchPath: 'public' },
    );
    const upsert = (table: string, key: string): string =>
      `INSERT INTO ${table} (name) VALUES ('a') ON CONFLICT ON CONSTRAINT ${key} DO NOTHING`;
    expect(maskedOnly.judge(upsert('customers', 'customers_email_key'), ctx()).verdict).toMatchObject({
      kind: 'deny',
      reasons: expect.arrayContaining(['column_denied']),
    });
    expect(
      maskedOnly.judge(
        'INSERT INTO orders (total) VALUES (1) ON CONFLICT ON CONSTRAINT orders_pkey DO NOTHING',
        ctx(),
      ).verdict.kind,
    ).toBe('rewrite');
  });
});

describe('the printed rewrite', () => {
  it('is forwarded only when it reads back as exactly the tree pgwarden judged: agent strings the printer wrote unquoted stay strings', () => {
    // Each printed the agent's string as SQL of its own, and the server ran it as pgwarden's
    // service role (red team, round 34, critical).
    const injected = `DO $$BEGIN DELETE FROM order_items; END$$ --`;
    const attacks = [
      `SELECT EXTRACT('epoch from created_at) as a, query_to_xml($$select ssn from customers$$, true, true, chr(32)) as b, extract(epoch' FROM created_at) FROM orders LIMIT 1`,
      `SELECT EXTRACT('epoch from now()); ${injected}' FROM created_at) FROM orders; SELECT 1`,
      `INSERT INTO orders (total) VALUES (1) ON CONFLICT (id int8_ops (x = 'a'')) DO NOTHING; ${injected.replace(/'/g, "''")}')) DO NOTHING; SELECT 1`,
      `SET TimeZone = 'UTC'' ; ${injected.replace(/'/g, "''")}'; SELECT id FROM orders`,
    ];
    for (const sql of attacks) {
      const v = judge.judge(sql, ctx()).verdict;
      if (v.kind === 'deny') continue;
      const printed = v.kind === 'rewrite' ? v.sql : sql;
      const kinds = parseSql(printed).stmts.map((st) => Object.keys(st.stmt)[0]);
      expect(kinds, printed).not.toContain('DoStmt');
      expect(printed.toLowerCase(), printed).not.toContain('query_to_xml(');
    }
    // Benign look-alikes still run.
    for (const sql of [
      'SELECT EXTRACT(epoch FROM created_at) FROM orders',
      `SELECT EXTRACT('epoch' FROM created_at) FROM orders`,
      `SET TimeZone = 'Europe/Paris'; SELECT id FROM orders`,
    ])
      expect(judge.judge(sql, ctx()).verdict.kind, sql).toBe('rewrite');
  });

  it("is reused for another statement's literals only where it prints them as the agent wrote them", () => {
    // EXTRACT's field is printed as a bare word: no template, so no agent token is spliced there.
    judge.judge(`SELECT EXTRACT('epoch' FROM created_at) AS e1 FROM orders`, ctx());
    const field = judge.judge(`SELECT EXTRACT('year' FROM created_at) AS e1 FROM orders`, ctx());
    expect(field.cached).toBe(false);
    expect(sqlOf(field.verdict)).toContain('EXTRACT(YEAR FROM created_at)');
    // Benign look-alike: a plain literal is printed as written, and the template serves.
    judge.judge(`SELECT id FROM orders WHERE total > 10 AND status = 'new'`, ctx());
    const plain = judge.judge(`SELECT id FROM orders WHERE total > 20 AND status = 'paid'`, ctx());
    expect(plain.cached).toBe(true);
    expect(sqlOf(plain.verdict)).toContain(`total > 20 AND status = 'paid'`);
  });

  it("is learnt as a shape only when every literal is a value: UESCAPE's string decides a name", () => {
    // A names its own CTE; B, the same text but for the escape character, names public.customers.
    // B was served from A's shape, unjudged, and read every tenant's rows (red team, round 36).
    const a = `WITH "!0063ustomers" AS (SELECT 1 AS id) SELECT * FROM U&"!0063ustomers" UESCAPE '#'`;
    const b = a.replace(`UESCAPE '#'`, `UESCAPE '!'`);
    expect(judge.judge(a, ctx()).verdict.kind).toBe('allow');
    const served = judge.judge(b, ctx());
    expect(served.cached).toBe(false);
    expect(served.verdict.kind).not.toBe('allow');
    // Nor does a refusal teach one: the same trick the other way made the cache refuse a
    // statement that names its own CTE (red team, round 37).
    const refused = `WITH "!0069nternal_notes" AS (SELECT 1 AS id) SELECT * FROM U&"!0069nternal_notes" UESCAPE '!'`;
    expect(judge.judge(refused, ctx()).verdict.kind).toBe('deny');
    const own = judge.judge(refused.replace(`UESCAPE '!'`, `UESCAPE '#'`), ctx());
    expect(own).toMatchObject({ cached: false, verdict: { kind: 'allow' } });
    // Benign look-alike: statements of a global table that differ in a value share one judgement.
    judge.judge('SELECT name FROM products WHERE price > 10', ctx());
    const other = judge.judge('SELECT name FROM products WHERE price > 20', ctx());
    expect(other).toMatchObject({ cached: true, verdict: { kind: 'allow' } });
  });

  it('keeps a cast to a pg_catalog type qualified, and FETCH FIRST ... WITH TIES (the library printed LIMIT)', () => {
    const v = judge.judge(`SELECT id::pg_catalog.text FROM orders`, ctx()).verdict;
    expect(sqlOf(v)).toContain('CAST(id AS pg_catalog.text)');
    const ties = judge.judge(
      'SELECT id FROM orders ORDER BY total OFFSET 1 FETCH FIRST 2 ROWS WITH TIES FOR UPDATE',
      ctx(),
    ).verdict;
    expect(sqlOf(ties)).toMatch(/ORDER BY total OFFSET \(1\) FETCH FIRST \(2\) ROWS WITH TIES FOR UPDATE$/);
  });
});

describe('FETCH and MOVE', () => {
  const reasons = (v: Verdict): readonly string[] => v.reasons;
  it('reach a cursor or a portal the session holds, judged under the rules in force', () => {
    const session = { cursors: new Map([['c', 0]]), portals: new Map([['p', 0]]) };
    for (const sql of ['FETCH 5 FROM c', 'MOVE FORWARD 3 p', 'FETCH ALL IN p'])
      expect(judge.judge(sql, ctx('acme', [], session)).verdict.kind).toBe('allow');
  });

  it('refuse a name the session does not hold, and a portal bound under other rules', () => {
    expect(
      reasons(judge.judge('FETCH 5 FROM q', ctx('acme', [], { portals: new Map([['p', 0]]) })).verdict),
    ).toEqual(['unknown_cursor']);
    const newer = createPolicyJudge(rules, catalog, { searchPath: 'public', rulesVersion: 1 });
    const v = newer.judge('MOVE 3 IN p', ctx('acme', [], { portals: new Map([['p', 0]]) })).verdict;
    expect(v.kind).toBe('deny');
    expect(reasons(v)).toEqual(['rules_changed']);
  });
});

describe('operators the server finds by name though none is written', () => {
  const statements = [
    "SELECT CASE name WHEN 'Widget' THEN 1 END AS v FROM products",
    'SELECT id BETWEEN 1 AND 3 AS v, id NOT BETWEEN SYMMETRIC 3 AND 1 AS w FROM products',
    'SELECT 1 AS v FROM products p JOIN products q USING (id) NATURAL JOIN products r',
  ];
  it('are the built-in ones where no operator of their names is defined elsewhere', () => {
    for (const sql of statements) expect(judge.judge(sql, ctx()).verdict.kind, sql).toBe('allow');
  });

  it('are refused where one is (a = in public ran for each of them: red team, round 54)', () => {
    const shadowed = createPolicyJudge(
      rules,
      { ...catalog, userOperators: ['<=', '='] },
      { searchPath: 'public' },
    );
    for (const sql of statements) {
      const v = shadowed.judge(sql, ctx()).verdict;
      expect(v.kind, sql).toBe('deny');
      expect(v.reasons, sql).toEqual(['operator_ambiguous']);
    }
  });
});

describe("the rewrite's invariant", () => {
  it("takes a hidden column's name elsewhere for what it is (red team, round 55: XX000 for any such name)", () => {
    for (const sql of [
      "SELECT s.ssn FROM (SELECT 'x' AS ssn) s",
      'WITH t(ssn) AS (VALUES (1)) SELECT ssn FROM t',
      'SELECT n.ssn FROM orders o, LATERAL (SELECT o.status AS ssn) n',
    ])
      expect(judge.judge(sql, ctx()).verdict.kind, sql).not.toBe('deny');
    // The attacks stay refused: the hidden column itself, read or written through.
    for (const sql of [
      'SELECT ssn FROM customers',
      "UPDATE customers SET name = 'x' WHERE ssn = '1'",
      "UPDATE customers SET name = 'x' RETURNING ssn",
      'SELECT s.ssn FROM (SELECT ssn FROM customers) s',
    ])
      expect(judge.judge(sql, ctx()).verdict.kind, sql).toBe('deny');
  });
});
