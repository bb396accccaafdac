import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCatalog } from '../src/policy/catalog.js';
import { createPolicyJudge } from '../src/policy/engine.js';
import { loadRules } from '../src/policy/rules-load.js';
import { serialize } from 'pg-protocol';
import type { Verdict } from '../src/policy/verdict.js';
import { declaredTypeProblem } from '../src/session/param-types.js';
import { loadParser } from '../src/sql/parse.js';
import { RawClient, errorOf } from './support/raw-client.js';
import { emptyFacts } from './support/read-only-judge.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';

/**
 * End to end, against real Postgres through the proxy: what a red team read or wrote past the
 * rules (positional shifts in INSERT, row types, system columns, EXPLAIN ANALYZE over filtered
 * catalogs, functions over OIDs and server state), each with a benign look-alike that still runs.
 */
let db: TestDatabase;
let proxy: TestProxy;

async function client(tenant: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: await proxy.url({ tenant, human: `alice@${tenant}.test` }) });
  await c.connect();
  return c;
}

async function withClient(fn: (c: pg.Client) => Promise<void>): Promise<void> {
  const c = await client('acme');
  try {
    await fn(c);
  } finally {
    await c.end();
  }
}

const refused = { code: '42501' };
const messageOf = async (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'no error',
    (e: Error) => e.message,
  );

beforeAll(async () => {
  await loadParser();
  db = await createTestDatabase('leaks');
  await db.sql(readFileSync('src/demo/seed.sql', 'utf8'));
  const judge = createPolicyJudge(await loadRules(['rules']), await loadCatalog(db.url, 'public'), {
    searchPath: 'public',
  });
  proxy = await startTestProxy(db, { judge });
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

describe('statements that differ only in literals', () => {
  it('share a judgement only when the literals are values: a UESCAPE string that renames a table is judged afresh (red team, round 36)', async () => {
    await withClient(async (c) => {
      const own = `WITH "!0063ustomers" AS (SELECT 1 AS id, 'x' AS ssn) SELECT * FROM U&"!0063ustomers" UESCAPE '#' ORDER BY id`;
      expect((await c.query(own)).rows).toEqual([{ id: 1, ssn: 'x' }]);
      // The same text but for the escape character names public.customers: judged as such, it
      // reads acme's customers with the SSN hidden, as a plain SELECT * FROM customers does.
      const theirs = own.replace(`UESCAPE '#'`, `UESCAPE '!'`);
      const scoped = (await c.query('SELECT * FROM customers ORDER BY id')).rows;
      expect(scoped.length).toBeGreaterThan(0);
      expect((await c.query(theirs)).rows).toEqual(scoped);
    });
  });
});

describe('INSERT values are matched to columns by position', () => {
  it('a value that expands into several columns is refused, and no row of globex is written', async () => {
    const count = async (): Promise<number> =>
      (await db.sql<{ n: number }>("SELECT count(*)::int AS n FROM orders WHERE org_id = 'globex'"))[0]!.n;
    const before = await count();
    const items = (await db.sql<{ n: number }>('SELECT count(*)::int AS n FROM order_items'))[0]!.n;
    const [globexOrder] = await db.sql<{ id: number }>(
      "SELECT id FROM orders WHERE org_id = 'globex' LIMIT 1",
    );
    await withClient(async (c) => {
      for (const sql of [
        "INSERT INTO orders (customer_id, total, org_id, status) SELECT (v).*, 'globex', 'acme' FROM (VALUES (NULL::bigint, 4747.00)) AS v(a, b)",
        "INSERT INTO orders (customer_id, total, org_id, status) VALUES ((ROW(NULL::bigint, 4848.00)).*, 'globex', 'acme')",
        `INSERT INTO order_items (id, sku, order_id, qty) SELECT (v).*, 20, ${globexOrder!.id} FROM (VALUES (5000::bigint, 'SKU-ACME')) AS v(a, b)`,
        "MERGE INTO orders o USING (SELECT ROW(NULL::bigint, 1.00) AS r) AS s ON false WHEN NOT MATCHED THEN INSERT (customer_id, total, org_id, status) VALUES ((s.r).*, 'globex', 'acme')",
      ])
        await expect(c.query(sql), sql).rejects.toMatchObject(refused);
      // Field selection keeps each value at its position: the row is acme's.
      await c.query('BEGIN');
      const ok = await c.query<{ org_id: string; total: string }>(
        'INSERT INTO orders (customer_id, total) SELECT (v).a, (v).b FROM (VALUES (NULL::bigint, 4747.00)) AS v(a, b) RETURNING org_id, total',
      );
      expect(ok.rows).toEqual([{ org_id: 'acme', total: '4747.00' }]);
      await c.query('ROLLBACK');
      expect((await c.query('SELECT (v).* FROM (VALUES (1, 2)) AS v(a, b)')).rows).toEqual([{ a: 1, b: 2 }]);
    });
    expect(await count()).toBe(before);
    expect((await db.sql<{ n: number }>('SELECT count(*)::int AS n FROM order_items'))[0]!.n).toBe(items);
  });
});

describe('type names', () => {
  it("an unlisted table's row type answers like a type that does not exist; a hiding table's is refused", async () => {
    await withClient(async (c) => {
      const shown = (sql: string, name: string): Promise<string> =>
        messageOf(c.query(sql.replace('%s', name))).then((m) => m.split(name).join('<name>'));
      for (const sql of [
        'SELECT (NULL::%s).*',
        "SELECT json_populate_record(NULL::%s, '{}')",
        "SELECT ROW(1, 'x', 'y')::%s",
        'PREPARE p1(%s) AS SELECT $1',
        'SELECT NULL::%s[]',
      ]) {
        const existing = await shown(sql, 'internal_notes');
        expect(existing, sql).toMatch(/not available to agents/);
        expect(await shown(sql, 'nonexistent_tbl'), sql).toBe(existing);
      }
      for (const sql of [
        'SELECT (NULL::public.customers).*',
        "SELECT ROW(1, 'o', 'n', 'e', 's')::customers",
        "SELECT * FROM jsonb_populate_recordset(NULL::customers, '[{}]')",
      ]) {
        await expect(c.query(sql), sql).rejects.toMatchObject(refused);
        expect(await messageOf(c.query(sql))).not.toMatch(/ssn/);
      }
      const products = await c.query(
        "SELECT (ROW(1, 's', 'n', 1.5)::products).name, 2.5::numeric(12, 2) AS n",
      );
      expect(products.rows).toEqual([{ name: 'n', n: '2.50' }]);
    });
  });

  it('an unlisted relation and a missing one get the same refusal, qualified or not', async () => {
    await withClient(async (c) => {
      for (const [a, b] of [
        ['internal_notes', 'nonexistent_tbl'],
        ['public.internal_notes', 'public.nonexistent_tbl'],
      ]) {
        const ma = (await messageOf(c.query(`SELECT * FROM ${a}`))).split(a!).join('<name>');
        const mb = (await messageOf(c.query(`SELECT * FROM ${b}`))).split(b!).join('<name>');
        expect(ma).toMatch(/available: .*public\.orders/);
        expect(mb).toBe(ma);
      }
    });
  });
});

describe('system columns', () => {
  it("of tenant and parent-scoped tables are refused; a global table's stay readable", async () => {
    await withClient(async (c) => {
      for (const sql of [
        'SELECT id, ctid, xmin FROM orders',
        "SELECT id FROM orders WHERE ctid > '(0,1)'",
        'UPDATE orders SET status = status WHERE id = 0 RETURNING xmin',
        "DELETE FROM orders WHERE ctid = '(0,1)'",
        'DELETE FROM order_items WHERE id = 0 RETURNING order_items.tableoid',
      ])
        await expect(c.query(sql), sql).rejects.toMatchObject(refused);
      const rows = await c.query('SELECT p.ctid, xmin FROM products p ORDER BY p.id');
      expect(rows.rowCount).toBe(3);
    });
  });
});

describe('EXPLAIN over filtered catalog relations', () => {
  it('refuses ANALYZE (Rows Removed by Filter would count hidden relations) and hides estimates', async () => {
    await withClient(async (c) => {
      await expect(c.query('EXPLAIN ANALYZE SELECT relname FROM pg_class')).rejects.toMatchObject(refused);
      await expect(
        c.query('EXPLAIN (ANALYZE) SELECT table_name FROM information_schema.tables'),
      ).rejects.toMatchObject(refused);
      const plan = (await c.query<{ 'QUERY PLAN': string }>('EXPLAIN SELECT relname FROM pg_class')).rows
        .map((r) => r['QUERY PLAN'])
        .join('\n');
      expect(plan).toMatch(/Scan/);
      expect(plan).not.toMatch(/rows=|cost=/);
    });
  });
});

describe('functions over OIDs and server state', () => {
  it('are refused (the catalog description functions answer only for what the filters show); min, max, count and version still run', async () => {
    const [internal] = await db.sql<{ oid: number }>("SELECT 'internal_notes'::regclass::oid::int AS oid");
    await withClient(async (c) => {
      for (const sql of [
        `SELECT satisfies_hash_partition(${internal!.oid}, 1, 0, 1)`,
        `SELECT oidvectortypes('${internal!.oid}')`,
        "SELECT acldefault('r', 10)",
        "SELECT makeaclitem(10, 10, 'SELECT', false)",
        "SELECT 'postgres=r/postgres'::aclitem",
        'SELECT current_query()',
        'SELECT inet_server_addr()',
        'SELECT inet_server_port()',
        'SELECT inet_client_addr()',
        'SELECT inet_client_port()',
        'SELECT txid_current()',
        'SELECT txid_status(1)',
        'SELECT txid_current_if_assigned()',
        'SELECT txid_visible_in_snapshot(1, NULL)',
        'SELECT pg_typeof(1)',
      ]) {
        await expect(c.query(sql), sql).rejects.toMatchObject(refused);
        const m = await messageOf(c.query(sql));
        expect(m, sql).not.toMatch(/internal_notes|org_id OPERATOR/);
      }
      const ok = await c.query<{ hi: string; lo: string; n: number; v: string }>(
        'SELECT max(price) AS hi, min(price) AS lo, count(*)::int AS n, version() AS v FROM products',
      );
      expect(ok.rows[0]).toMatchObject({
        hi: '99.00',
        lo: '9.99',
        n: 3,
        v: expect.stringMatching(/PostgreSQL/),
      });
      // Column defaults are still listed (information_schema renders them inside its own view).
      const defaults = await c.query<{ column_name: string; column_default: string | null }>(
        "SELECT column_name, column_default FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'status'",
      );
      expect(defaults.rows[0]?.column_default).toMatch(/'new'/);
      // pg_get_expr read a tree against any relation OID (red team, round 11): a tree without
      // columns told which OIDs are relations, one with columns named an unlisted table's. It now
      // prints a tree only against its own relation (test/policy-catalog-functions.test.ts).
      const probe = `SELECT g FROM pg_type t, generate_series(${internal!.oid - 40}, ${internal!.oid + 40}) g WHERE t.typname = 'time_stamp' AND pg_get_expr(t.typdefaultbin, g::oid) IS NOT NULL`;
      expect((await db.sql(probe)).length).toBeGreaterThan(0);
      expect((await c.query(probe.replace('FROM pg_type', 'FROM pg_catalog.pg_type'))).rowCount).toBe(0);
      const byOid = `SELECT pg_catalog.pg_get_expr(c.relpartbound, ${internal!.oid}::oid) AS e FROM pg_catalog.pg_class c`;
      expect((await c.query<{ e: string | null }>(byOid)).rows.every((r) => r.e === null)).toBe(true);
    });
  });
});

describe('catalog columns of object-naming types', () => {
  it('are read as numbers and text: an untyped literal beside one names no function or role', async () => {
    await db.sql(
      'CREATE OR REPLACE FUNCTION public.secret_payroll_calc() RETURNS int LANGUAGE sql AS $$SELECT 1$$',
    );
    const [fn] = await db.sql<{ oid: number }>(
      "SELECT 'public.secret_payroll_calc'::regproc::oid::int AS oid",
    );
    // The server itself turns the literal into the function's name (so the test can fail).
    const direct = await db.sql<{ g: string }>(
      `SELECT greatest(typinput, '${fn!.oid}')::text AS g FROM pg_type WHERE typname = 'int4'`,
    );
    expect(direct[0]!.g).toBe('secret_payroll_calc');
    await withClient(async (c) => {
      // The attack (red team, round 11): the literal took typinput's type, regproc.
      const named = await c.query<{ g: string }>(
        `SELECT greatest(typinput, '${fn!.oid}')::text AS g FROM pg_catalog.pg_type WHERE typname = 'int4'`,
      );
      expect(named.rows[0]!.g).toBe(String(fn!.oid));
      await expect(
        c.query("SELECT greatest(typinput, 'no_such_fn_xyz') FROM pg_catalog.pg_type WHERE typname = 'int4'"),
      ).rejects.toThrow(/invalid input syntax for type oid/);
      const acl = await c.query<{ a: string[] }>(
        "SELECT coalesce(relacl, '{no_such_role_xyz=r/postgres}') AS a FROM pg_catalog.pg_class WHERE relname = 'orders'",
      );
      expect(acl.rows[0]!.a).toEqual(['no_such_role_xyz=r/postgres']);
      // Transaction ids follow every tenant's writes: read as NULL (the server has a value).
      const [frozen] = await db.sql<{ x: string }>(
        "SELECT relfrozenxid::text AS x FROM pg_class WHERE relname = 'orders'",
      );
      expect(frozen!.x).toMatch(/^\d+$/);
      const xid = await c.query<{ x: string | null }>(
        "SELECT relfrozenxid::text AS x FROM pg_catalog.pg_class WHERE relname = 'orders'",
      );
      expect(xid.rows[0]!.x).toBeNull();
      // The look-alike: the columns are still there, as numbers.
      const plain = await c.query<{ typinput: number; typname: string }>(
        "SELECT typname, typinput FROM pg_catalog.pg_type WHERE typname = 'int4'",
      );
      expect(plain.rows[0]!.typname).toBe('int4');
      expect(Number(plain.rows[0]!.typinput)).toBeGreaterThan(0);
    });
  });
});

describe('the literal-shape cache', () => {
  // A statement allowed once is reused for every text of the same shape (literals replaced)
  // without parsing. The red team found texts the shape lexer split differently from PostgreSQL
  // (\r ends a -- comment and continues an E'' string): the benign first statement was allowed and
  // cached, and the second, of the same shape, ran unjudged and read every tenant's SSNs.
  const attacks: [string, string, string][] = [
    [
      'E string continued across \\r',
      "SELECT E'a'\r'x', 'b'",
      "SELECT E'a'\r'\\', ' AS z, ssn, org_id FROM customers --'",
    ],
    [
      'comment ended by \\r',
      "SELECT 1 -- \r, '\n, ', 2 --' AS y FROM products",
      "SELECT 1 -- \r, '\n, ', ssn, org_id FROM customers --' AS y FROM products",
    ],
  ];
  for (const [name, benign, attack] of attacks) {
    for (const extended of [false, true]) {
      it(`${name} (${extended ? 'extended' : 'simple'} protocol): the second statement is judged on its own`, () =>
        withClient(async (c) => {
          const run = (text: string): Promise<pg.QueryResult> =>
            extended ? c.query({ text, values: [] }) : c.query(text);
          await run(benign);
          await expect(run(attack)).rejects.toMatchObject(refused);
        }));
    }
  }

  it('CRLF line ends and comments ended by \\r keep working, with other literals each time', () =>
    withClient(async (c) => {
      for (const id of [1, 2, 3]) {
        const r = await c.query(`SELECT id, name -- the customer\r\nFROM customers\r\nWHERE id = ${id}\r\n`);
        expect(r.rows).toEqual([{ id: String(id), name: `acme customer ${id}` }]);
      }
    }));
});

describe('parameter types declared in Parse', () => {
  const allow: Verdict = { ...emptyFacts, kind: 'allow' };

  it('refuses a system row type whose regtype field named any table by OID; built-in data types still work', async () => {
    const [seq] = await db.sql<{ oid: number }>("SELECT 'pg_catalog.pg_sequences'::regtype::oid::int AS oid");
    const [cls] = await db.sql<{ oid: number }>("SELECT 'pg_catalog.pg_class'::regtype::oid::int AS oid");
    const [notes] = await db.sql<{ oid: number }>("SELECT 'internal_notes'::regtype::oid::int AS oid");
    const c = await RawClient.connect(proxy.port);
    try {
      await c.login('support-bot', db.name, await proxy.token({ tenant: 'acme' }));
      // The attack (red team, round 11): the row type of pg_sequences has a regtype field, so the
      // server read the Bind value as a type OID and printed the name of an unlisted table.
      const fields = Array.from({ length: 11 }, (_, i) => (i === 3 ? String(notes!.oid) : '')).join(',');
      for (const [text, types, value] of [
        ['SELECT ($1).data_type::text AS t', [seq!.oid], `(${fields})`],
        ['SELECT ($1).relacl::text AS t', [cls!.oid], '(,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,{x=r/postgres},,)'],
      ] as const) {
        c.send(
          Buffer.concat([
            serialize.parse({ text, types: [...types] }),
            serialize.bind({ values: [value] }),
            serialize.execute({}),
            serialize.sync(),
          ]),
        );
        const answer = await c.untilReady();
        const err = errorOf(answer.find((m) => m.code === 'E'));
        expect(err, text).toMatchObject({ code: '42501' });
        expect(err?.message).toContain('which agents may not use');
        expect(answer.map((m) => m.code)).toEqual(['E', 'Z']);
        expect(JSON.stringify(answer.map((m) => m.body.toString()))).not.toContain('internal_notes');
      }
      // The benign look-alike: parameters declared as ordinary built-in types.
      c.send(
        Buffer.concat([
          serialize.parse({
            text: 'SELECT $1::int + 1 AS a, $2::text AS b, $3::jsonb AS c, $4::int[] AS d, $5::timestamptz AS e',
            types: [23, 25, 3802, 1007, 1184],
          }),
          serialize.bind({ values: ['41', 'x', '{"k":1}', '{1,2}', '2026-11-21T00:00:00Z'] }),
          serialize.execute({}),
          serialize.sync(),
        ]),
      );
      expect((await c.untilReady()).map((m) => m.code)).toEqual(['1', '2', 'D', 'C', 'Z']);
    } finally {
      c.close();
    }
  });

  it('accepts no composite, pseudo or internal type of the server, nor arrays of them', async () => {
    const rows = await db.sql<{ oid: number; typname: string; typtype: string; etype: string | null }>(`
      SELECT t.oid::int AS oid, t.typname, t.typtype, e.typtype AS etype
      FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'`);
    expect(rows.length).toBeGreaterThan(400);
    const unsafe = rows.filter(
      (r) =>
        (r.typtype === 'c' || r.etype === 'c' || r.typtype === 'p' || r.oid >= 16384) &&
        r.oid !== 705 &&
        r.oid !== 2278,
    );
    expect(unsafe.length).toBeGreaterThan(200);
    for (const r of unsafe) expect(declaredTypeProblem(allow, [r.oid]), r.typname).toBeDefined();
    const naming = rows.filter((r) => /^_?(reg|aclitem|xid|cid$|txid|pg_snapshot)/.test(r.typname));
    expect(naming.length).toBeGreaterThan(20);
    for (const r of naming) expect(declaredTypeProblem(allow, [r.oid]), r.typname).toBeDefined();
    for (const name of [
      'int4',
      'text',
      'numeric',
      'uuid',
      'jsonb',
      '_text',
      'tstzrange',
      'bytea',
      'bool',
      'void',
    ])
      expect(declaredTypeProblem(allow, [rows.find((r) => r.typname === name)!.oid]), name).toBeUndefined();
  });
});

describe('HAVING on a table read directly', () => {
  it("never runs before the tenant filter: its error cannot tell another tenant's values", async () => {
    // The attack (red team, round 17): a HAVING condition without aggregates is moved into the
    // scan's WHERE, and one that costs nothing (a jsonb subscript, CASE, ARRAY) runs before the
    // tenant filter. It raises only for a globex row with status 'paid'.
    const probe = (tenant: string, status: string): string =>
      `SELECT 1 FROM orders GROUP BY id HAVING ARRAY[CASE WHEN ('{"${tenant}":{"${status}":1}}'::jsonb)[org_id][status] IS NULL THEN ARRAY[1] ELSE ARRAY[1,2] END, ARRAY[1]] IS NOT NULL`;
    await db.sql('ANALYZE orders');
    // With a sequential scan (what the planner picks for a small or mostly-own table), the
    // unfenced form raises on globex's row: the server, given it directly, shows the attack works.
    const unfenced = (sql: string): string =>
      sql.replace(
        'FROM orders GROUP BY',
        "FROM public.orders AS orders WHERE orders.org_id OPERATOR(pg_catalog.=) 'acme'::text GROUP BY",
      );
    const s = new pg.Client({ connectionString: db.url });
    await s.connect();
    const direct: string[] = [];
    try {
      await s.query('SET enable_indexscan = off; SET enable_bitmapscan = off');
      direct.push(await messageOf(s.query(unfenced(probe('globex', 'paid')))));
      direct.push(await messageOf(s.query(unfenced(probe('globex', 'refunded')))));
    } finally {
      await s.end();
    }
    expect(direct[0]).toMatch(/multidimensional arrays/);
    expect(direct[1]).toBe('no error');
    // Through pgwarden the read stays fenced: the same answer for every tenant and status.
    await withClient(async (c) => {
      for (const [tenant, status] of [
        ['globex', 'paid'],
        ['globex', 'refunded'],
        ['initech', 'paid'],
      ])
        expect(await messageOf(c.query(probe(tenant!, status!))), `${tenant} ${status}`).toBe('no error');
      // acme's own paid orders still raise, as they would on a database of acme's rows alone.
      expect(await messageOf(c.query(probe('acme', 'paid')))).toMatch(/multidimensional arrays/);
    });
  });
});

describe('a bigint column beside a parameter declared oid', () => {
  it("is refused: the server's cast to oid raised only on another tenant's large ids (red team, round 18)", async () => {
    // globex's item has an id past oid's range. `id = $1` with $1 declared oid casts the column to
    // oid; pgwarden copies the condition next to the filter (it cannot raise, for the types it
    // allows), so the cast ran on globex's rows and its error told whether they matched `sku = …`.
    await db.sql(`INSERT INTO orders (id, org_id, customer_id, total, status) VALUES (5000000001, 'globex', NULL, 1, 'new');
      INSERT INTO order_items (id, order_id, sku, qty) VALUES (5000000002, 5000000001, 'SECRET-SKU', 77)`);
    const probe = (sku: string): string => `SELECT id FROM order_items WHERE sku = '${sku}' AND id = $1`;
    // The server, given the forwarded form's copied condition, raises for the match only.
    await expect(
      db.sql(`SELECT id FROM order_items WHERE sku = 'SECRET-SKU' AND id = 1::oid`),
    ).rejects.toThrow(/OID out of range/);
    const c = await RawClient.connect(proxy.port);
    try {
      await c.login('support-bot', db.name, await proxy.token({ tenant: 'acme' }));
      const answers: string[] = [];
      for (const sku of ['SECRET-SKU', 'NOPE']) {
        c.send(
          Buffer.concat([
            serialize.parse({ text: probe(sku), types: [26] }),
            serialize.bind({ values: ['1'] }),
            serialize.execute({}),
            serialize.sync(),
          ]),
        );
        const answer = await c.untilReady();
        const err = errorOf(answer.find((m) => m.code === 'E'));
        answers.push(`${err?.code ?? 'none'} ${err?.message.includes('which agents may not use') === true}`);
      }
      // Refused at Parse alike, whatever globex holds.
      expect(answers).toEqual(['42501 true', '42501 true']);
      // The look-alike: the parameter left to the server (it types it bigint) runs.
      c.send(
        Buffer.concat([
          serialize.parse({ text: probe('SECRET-SKU'), types: [0] }),
          serialize.bind({ values: ['5000000002'] }),
          serialize.execute({}),
          serialize.sync(),
        ]),
      );
      expect((await c.untilReady()).map((m) => m.code)).toEqual(['1', '2', 'C', 'Z']);
    } finally {
      c.close();
      await db.sql('DELETE FROM order_items WHERE id = 5000000002; DELETE FROM orders WHERE id = 5000000001');
    }
    // SQL-level PREPARE with an oid parameter is refused too.
    await withClient(async (c) => {
      await expect(c.query(`PREPARE p(oid) AS ${probe('SECRET-SKU')}`)).rejects.toMatchObject(refused);
      await expect(c.query(`PREPARE q(pg_catalog.oid[]) AS SELECT $1`)).rejects.toMatchObject(refused);
      await c.query(`PREPARE r(bigint) AS ${probe('SECRET-SKU')}`);
    });
  });
});

describe('a parameter the server types from another use', () => {
  it("is not copied beside the tenant filter: its cast raised only on another tenant's rows (red team, round 19)", async () => {
    // An undeclared $1 takes the type of its first use: `(SELECT $1::oid) x` made it an oid, and
    // the copy of `order_id = $1` into order_items' fence cast the bigint column to oid, which
    // raised on globex's order 5000000000 only when `sku = 'X'` matched it.
    await db.sql(`INSERT INTO orders (id, org_id, customer_id, total, status) VALUES (5000000000, 'globex', NULL, 1, 'new');
      INSERT INTO order_items (id, order_id, sku, qty) VALUES (5000000003, 5000000000, 'X', 1)`);
    const read = (sku: string): string =>
      `SELECT x.o, i.id FROM (SELECT $1::oid AS o) x, order_items i WHERE i.sku = '${sku}' AND i.order_id = $1`;
    const write = (sku: string): string =>
      `UPDATE order_items SET qty = qty FROM (SELECT $1::oid AS o) x WHERE order_items.order_id = $1 AND order_items.sku = '${sku}'`;
    try {
      // The server, given the copy as the old rewrite placed it, raises for the match only.
      await expect(
        db.sql(`SELECT id FROM order_items WHERE sku = 'X' AND order_id = '3'::oid`),
      ).rejects.toThrow(/OID out of range/);
      await withClient(async (c) => {
        for (const sql of [read, write]) {
          const answers = [];
          for (const sku of ['X', 'Y'])
            answers.push(
              await c.query(sql(sku), ['3']).then(
                (r) => `${r.command} ${r.rowCount}`,
                (e: Error) => e.message,
              ),
            );
          // The same answer whatever globex holds.
          expect(answers[0], sql('X')).toBe(answers[1]);
          expect(answers[0], sql('X')).toMatch(/^(SELECT|UPDATE) 0$/);
        }
        // The look-alike, and the server's own typing kept: $1 first used as numeric stays numeric
        // (the copy had typed it integer, and '2.0' was refused as an integer).
        const items = await c.query<{ v: string; id: string }>(
          'SELECT $1::numeric AS v, i.id FROM order_items i WHERE i.qty = $1 ORDER BY i.id',
          ['2.0'],
        );
        expect(items.rows.length).toBeGreaterThan(0);
        expect(items.rows.every((r) => r.v === '2.0')).toBe(true);
      });
    } finally {
      await db.sql('DELETE FROM order_items WHERE id = 5000000003; DELETE FROM orders WHERE id = 5000000000');
    }
  });
});

describe('TABLESAMPLE on a tenant table', () => {
  it('is a fresh BERNOULLI draw only: pages and repeatable seeds told where rows lie (red team, round 21)', async () => {
    await withClient(async (c) => {
      for (const sql of [
        'SELECT id FROM orders TABLESAMPLE SYSTEM (50)',
        'SELECT id FROM orders TABLESAMPLE BERNOULLI (50) REPEATABLE (7)',
        'SELECT id FROM order_items TABLESAMPLE SYSTEM (100) REPEATABLE (1)',
      ])
        await expect(c.query(sql), sql).rejects.toMatchObject(refused);
      const all = await c.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM orders TABLESAMPLE BERNOULLI (100)',
      );
      const own = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM orders');
      expect(all.rows[0]!.n).toBe(own.rows[0]!.n);
      // A global table samples as written.
      expect(
        (await c.query('SELECT sku FROM products TABLESAMPLE SYSTEM (100) REPEATABLE (1)')).rowCount,
      ).toBe(3);
    });
  });
});
