import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadCatalog } from '../src/policy/catalog.js';
import { createPolicyJudge } from '../src/policy/engine.js';
import { loadRules } from '../src/policy/rules-load.js';
import type { Judge } from '../src/policy/verdict.js';
import { serialize } from 'pg-protocol';
import { loadParser } from '../src/sql/parse.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';
import { RawClient, errorOf, type RawMessage } from './support/raw-client.js';

const run = promisify(execFile);

/** End to end: real clients through pgwarden with the policy engine, two tenants, real Postgres. */
let db: TestDatabase;
let proxy: TestProxy;
let judge: Judge;

async function client(tenant: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: await proxy.url({ tenant, human: `alice@${tenant}.test` }) });
  await c.connect();
  return c;
}

/**
 * The server kept a statement pgwarden was led to forget: pgwarden itself knows the name is taken
 * (the server would answer 42P05), and the Bind that would run the old statement is refused.
 */
function expectStillTaken(redefine: RawMessage[] | undefined, bind: RawMessage[] | undefined): void {
  expect(errorOf(redefine![0])).toMatchObject({
    code: '42501',
    message: expect.stringContaining('already exists'),
  });
  expect(errorOf(bind![0])).toMatchObject({ code: '42501' });
}

const globexChecksum = async (): Promise<string> =>
  (
    await db.sql<{ h: string }>(
      `SELECT md5(coalesce((SELECT string_agg(o::text, ',' ORDER BY id) FROM orders o WHERE org_id = 'globex'), '') ||
                  coalesce((SELECT string_agg(c::text, ',' ORDER BY id) FROM customers c WHERE org_id = 'globex'), '')) AS h`,
    )
  )[0]!.h;

beforeAll(async () => {
  await loadParser();
  db = await createTestDatabase('e2e');
  await db.sql(readFileSync('src/demo/seed.sql', 'utf8'));
  judge = createPolicyJudge(await loadRules(['rules']), await loadCatalog(db.url, 'public'), {
    searchPath: 'public',
    // The config's default (session.statementTimeoutMs), as start.ts passes it.
    statementTimeoutMs: 30_000,
  });
  proxy = await startTestProxy(db, { judge });
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

describe('schema introspection, as MCP Postgres servers do it', () => {
  it('lists tables and columns through information_schema, and refuses routine definitions', async () => {
    const c = await client('acme');
    try {
      const tables = await c.query<{ table_name: string }>(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
      );
      expect(tables.rows.map((r) => r.table_name)).toContain('orders');
      const columns = await c.query(
        'SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position',
        ['orders'],
      );
      expect(columns.rows[0]).toEqual({ column_name: 'id', data_type: 'bigint' });
      // The service role sees internal_notes and customers.ssn; the agent's listing shows neither.
      const all = await db.sql<{ n: number }>(
        "SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = 'internal_notes'",
      );
      expect(all[0]?.n).toBe(1);
      expect(tables.rows.map((r) => r.table_name)).not.toContain('internal_notes');
      const customerColumns = await c.query<{ column_name: string }>(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers'",
      );
      expect(customerColumns.rows.map((r) => r.column_name).sort()).toEqual([
        'email',
        'id',
        'name',
        'org_id',
      ]);
      const qualified = await c.query(
        "SELECT information_schema.columns.column_name FROM information_schema.columns WHERE information_schema.columns.column_name = 'ssn'",
      );
      expect(qualified.rows).toEqual([]);
      await expect(
        c.query('SELECT routine_definition FROM information_schema.routines'),
      ).rejects.toMatchObject({
        code: '42501',
      });
    } finally {
      await c.end();
    }
  });
});

describe('system catalogs, as ORMs and pgbench read them', () => {
  const publicRelations =
    "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' ORDER BY 1";

  it('show only what the rules name: no unlisted table, hidden column or their comments', async () => {
    await db.sql(`COMMENT ON TABLE internal_notes IS 'acquisition plans'`);
    await db.sql(`COMMENT ON COLUMN customers.ssn IS 'social security number'`);
    await db.sql(`COMMENT ON TABLE orders IS 'one row per order'`);
    // The service role sees everything, so the filtered answers below can fail.
    const all = await db.sql<{ relname: string }>(publicRelations);
    expect(all.map((r) => r.relname)).toEqual(
      expect.arrayContaining(['internal_notes', 'internal_notes_id_seq', 'internal_notes_pkey']),
    );
    const c = await client('acme');
    try {
      const rels = await c.query<{ relname: string; relkind: string }>(
        publicRelations.replace('c.relname', 'c.relname, c.relkind'),
      );
      const ofKind = (k: string): string[] => rels.rows.filter((r) => r.relkind === k).map((r) => r.relname);
      expect(ofKind('r')).toEqual(['customers', 'order_items', 'orders', 'products']);
      // The sequences their identity columns own, and their indexes (pg_index is listed too).
      expect(ofKind('S')).toEqual([
        'customers_id_seq',
        'order_items_id_seq',
        'orders_id_seq',
        'products_id_seq',
      ]);
      expect(rels.rows.map((r) => r.relname).filter((n) => n.startsWith('internal_notes'))).toEqual([]);
      const system = await c.query(`SELECT 1 FROM pg_catalog.pg_class WHERE relname = 'pg_class'`);
      expect(system.rowCount).toBe(1);
      const cols = await c.query<{ attname: string }>(
        `SELECT a.attname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
         WHERE c.relname = 'customers' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
      );
      expect(cols.rows.map((r) => r.attname)).toEqual(['id', 'org_id', 'name', 'email']);
      const types = await c.query<{ typname: string }>(
        `SELECT typname FROM pg_catalog.pg_type WHERE typname IN ('orders', '_orders', 'internal_notes', '_internal_notes') ORDER BY 1`,
      );
      expect(types.rows.map((r) => r.typname)).toEqual(['_orders', 'orders']);
      const comments = await c.query<{ description: string }>(
        `SELECT description FROM pg_catalog.pg_description ORDER BY 1`,
      );
      const texts = comments.rows.map((r) => r.description);
      expect(texts).toContain('one row per order');
      expect(texts).not.toContain('acquisition plans');
      expect(texts).not.toContain('social security number');
    } finally {
      await c.end();
    }
  });

  it('list no constraint, index or comment that names a hidden column or speaks of an unlisted table', async () => {
    // The attack (red team, round 11): with pg_constraint listed, a CHECK on customers.ssn showed
    // its name, column number and pattern; a comment on internal_notes' key showed in pg_description.
    const setup = [
      `ALTER TABLE customers ADD CONSTRAINT customers_ssn_format CHECK (ssn ~ '^[0-9]{9}$') NOT VALID`,
      `CREATE INDEX customers_ssn_idx ON customers (ssn)`,
      `CREATE INDEX customers_name_if_ssn_idx ON customers (name) WHERE ssn IS NOT NULL`,
      `ALTER TABLE orders ADD CONSTRAINT orders_note_fk FOREIGN KEY (customer_id) REFERENCES internal_notes (id) NOT VALID`,
      `COMMENT ON CONSTRAINT internal_notes_pkey ON internal_notes IS 'pk of the negotiation notes'`,
    ];
    for (const sql of setup) await db.sql(sql);
    const rules = await loadRules(['rules']);
    const wide = createPolicyJudge(
      {
        ...rules,
        introspection: [...(rules.introspection ?? []), 'pg_catalog.pg_constraint', 'pg_catalog.pg_index'],
      },
      await loadCatalog(db.url, 'public'),
      { searchPath: 'public' },
    );
    const p = await startTestProxy(db, { judge: wide });
    const c = new pg.Client({ connectionString: await p.url({ tenant: 'acme', human: 'alice@acme.test' }) });
    await c.connect();
    try {
      const constraints = `SELECT k.conname FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_class t ON t.oid = k.conrelid
        WHERE t.relname IN ('customers', 'orders') ORDER BY 1`;
      const indexes = `SELECT x.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class x ON x.oid = i.indexrelid
        JOIN pg_catalog.pg_class t ON t.oid = i.indrelid WHERE t.relname = 'customers' ORDER BY 1`;
      // The service role sees them all, so the filtered answers below can fail.
      expect((await db.sql<{ conname: string }>(constraints)).map((r) => r.conname)).toEqual(
        expect.arrayContaining(['customers_ssn_format', 'orders_note_fk']),
      );
      expect((await db.sql<{ relname: string }>(indexes)).map((r) => r.relname)).toEqual(
        expect.arrayContaining(['customers_ssn_idx', 'customers_name_if_ssn_idx', 'customers_pkey']),
      );
      const seen = (await c.query<{ conname: string }>(constraints)).rows.map((r) => r.conname);
      expect(seen).not.toContain('customers_ssn_format');
      expect(seen).not.toContain('orders_note_fk');
      // The look-alike: constraints on visible columns of listed tables are listed.
      expect(seen).toEqual(expect.arrayContaining(['customers_pkey', 'orders_pkey']));
      const shown = (await c.query<{ relname: string }>(indexes)).rows.map((r) => r.relname);
      expect(shown).toContain('customers_pkey');
      const names = await c.query<{ relname: string }>(
        "SELECT relname FROM pg_catalog.pg_class WHERE relname LIKE 'customers%' ORDER BY 1",
      );
      for (const name of [...shown, ...names.rows.map((r) => r.relname)]) expect(name).not.toMatch(/ssn/);
      const comments = (
        await c.query<{ description: string }>('SELECT description FROM pg_catalog.pg_description')
      ).rows;
      expect(comments.map((r) => r.description)).not.toContain('pk of the negotiation notes');
      expect(comments.map((r) => r.description)).toContain('one row per order');
    } finally {
      await c.end();
      await p.close();
      await db.sql(`COMMENT ON CONSTRAINT internal_notes_pkey ON internal_notes IS NULL`);
      await db.sql(`ALTER TABLE orders DROP CONSTRAINT orders_note_fk`);
      await db.sql(`DROP INDEX customers_ssn_idx, customers_name_if_ssn_idx`);
      await db.sql(`ALTER TABLE customers DROP CONSTRAINT customers_ssn_format`);
    }
  });

  it('a predicate that raises on a hidden row never sees it (the views are fenced)', async () => {
    const c = await client('acme');
    try {
      for (const sql of [
        `SELECT count(*) FROM pg_catalog.pg_class WHERE 1 / (CASE WHEN relname = 'internal_notes' THEN 0 ELSE 1 END) = 1`,
        `SELECT count(*) FROM pg_catalog.pg_attribute WHERE 1 / (CASE WHEN attname = 'ssn' THEN 0 ELSE 1 END) = 1`,
      ])
        await expect(c.query(sql), sql).resolves.toBeDefined();
    } finally {
      await c.end();
    }
    await expect(
      db.sql(
        `SELECT count(*) FROM pg_catalog.pg_class WHERE 1 / (CASE WHEN relname = 'internal_notes' THEN 0 ELSE 1 END) = 1`,
      ),
    ).rejects.toThrow(/division by zero/);
  });
});

describe('server errors', () => {
  const nullName = `UPDATE customers SET name = NULL WHERE id = (SELECT min(id) FROM customers WHERE org_id = 'acme')`;

  it('never carry row values in DETAIL: a failing row does not show a hidden or masked column', async () => {
    // The server's own error shows the whole row, SSN and raw e-mail included (so the test can fail).
    const direct = (await db.sql(nullName).catch((e: unknown) => e)) as { detail?: string };
    expect(direct.detail).toMatch(/Failing row contains .*@acme\.test, 0+7919\)/);
    const c = await client('acme');
    try {
      for (const sql of [
        nullName,
        `INSERT INTO customers (name, email) VALUES (NULL, 'x@acme.test')`,
        `UPDATE customers SET email = NULL WHERE id = (SELECT min(id) FROM customers)`,
      ]) {
        const err = (await c.query(sql).catch((e: unknown) => e)) as Record<string, unknown>;
        expect(err, sql).toMatchObject({ code: '23502' });
        expect(err.detail, sql).toBeUndefined();
        expect(JSON.stringify(err), sql).not.toMatch(/0+7919|user1@acme\.test/);
      }
      // Benign: the error itself, with its SQLSTATE, message and constraint, reaches the agent.
      const err = (await c.query(nullName).catch((e: unknown) => e)) as Record<string, unknown>;
      expect(err).toMatchObject({
        message: expect.stringMatching(/null value in column "name"/),
        column: 'name',
      });
      expect((await c.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    } finally {
      await c.end();
    }
  });

  it('never name a table the rules do not (a foreign key from it), and keep the name of a listed one', async () => {
    await db.sql('CREATE TABLE vendor_refs (order_id bigint NOT NULL REFERENCES orders (id))');
    const [lone] = await db.sql<{ id: string }>(
      `INSERT INTO orders (org_id, customer_id, total) VALUES ('acme', 1, 1) RETURNING id`,
    );
    await db.sql(`INSERT INTO vendor_refs VALUES (${lone!.id})`);
    const [withItems] = await db.sql<{ id: string }>(
      `SELECT min(o.id) AS id FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.org_id = 'acme'`,
    );
    const deleteLone = `DELETE FROM orders WHERE id = ${lone!.id}`;
    // The service role's session names the unlisted table (so the test can fail).
    await expect(db.sql(deleteLone)).rejects.toThrow(/vendor_refs/);
    const c = await client('acme');
    try {
      const err = (await c.query(deleteLone).catch((e: unknown) => e)) as Record<string, unknown>;
      expect(err).toMatchObject({ code: '23503', message: expect.stringMatching(/withholds its name/) });
      expect(JSON.stringify(err)).not.toMatch(/vendor_refs/);
      // Responders still read the server's own message in the decision record.
      // (The outcome completes at ReadyForQuery, which node-postgres need not wait for to reject.)
      await expect
        .poll(() => proxy.sink.outcomes.some((o) => o.errorMessage?.includes('vendor_refs')))
        .toBe(true);
      // Benign: a foreign key from a listed table keeps its names, which help the agent.
      await expect(c.query(`DELETE FROM orders WHERE id = ${withItems!.id}`)).rejects.toMatchObject({
        code: '23503',
        message: expect.stringMatching(/order_items/),
      });
    } finally {
      await c.end();
      await db.sql(`DROP TABLE vendor_refs; DELETE FROM orders WHERE id = ${lone!.id}`);
    }
  });
});

describe('server notices', () => {
  it("reach the agent without DETAIL, where a trigger may print a row's hidden values", async () => {
    await db.sql(`CREATE FUNCTION note_ssn() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE NOTICE 'customer changed' USING DETAIL = 'ssn ' || NEW.ssn; RETURN NEW; END $$`);
    await db.sql(
      `CREATE TRIGGER note_ssn BEFORE UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION note_ssn()`,
    );
    const c = await client('acme');
    try {
      const notices: { message?: string; detail?: string }[] = [];
      c.on('notice', (n) => notices.push(n));
      await c.query(`UPDATE customers SET name = name WHERE id = (SELECT min(id) FROM customers)`);
      expect(notices).toHaveLength(1);
      expect(notices[0]).toMatchObject({ message: 'customer changed' });
      expect(notices[0]!.detail).toBeUndefined();
      // Directly, the service role's session gets the DETAIL (so the test can fail).
      const direct = new pg.Client({ connectionString: db.url });
      await direct.connect();
      const seen: { detail?: string }[] = [];
      direct.on('notice', (n) => seen.push(n));
      await direct.query(`UPDATE customers SET name = name WHERE id = (SELECT min(id) FROM customers)`);
      await direct.end();
      expect(seen[0]?.detail).toMatch(/^ssn \d+/);
    } finally {
      await c.end();
      await db.sql('DROP TRIGGER note_ssn ON customers; DROP FUNCTION note_ssn()');
    }
  });
});

describe('EXPLAIN over tenant tables', () => {
  it("is refused in every form, the plan's shape following every tenant's statistics; global tables and catalogs are explained", async () => {
    const c = await client('acme');
    try {
      // Round 21: without costs, a hash join for `status = 'refunded'` and a nested loop for
      // another value told that another tenant had many refunded orders.
      for (const sql of [
        "EXPLAIN (COSTS OFF) SELECT * FROM orders o, customers c WHERE o.status = 'refunded' AND c.id = o.customer_id",
        'EXPLAIN SELECT * FROM orders WHERE total > 1',
        'EXPLAIN ANALYZE SELECT * FROM orders',
        'EXPLAIN SELECT * FROM order_items',
        'EXPLAIN SELECT p.name FROM products p JOIN orders o ON o.total > p.price',
      ])
        await expect(c.query(sql), sql).rejects.toMatchObject({
          code: '42501',
          message: expect.stringContaining("EXPLAIN over a tenant's tables is not allowed"),
        });
      const global = (await c.query<{ 'QUERY PLAN': string }>('EXPLAIN ANALYZE SELECT * FROM products')).rows
        .map((r) => r['QUERY PLAN'])
        .join('\n');
      expect(global).toMatch(/actual/);
      const catalog = (
        await c.query<{ 'QUERY PLAN': string }>(
          "EXPLAIN SELECT relname FROM pg_catalog.pg_class WHERE relkind = 'r'",
        )
      ).rows
        .map((r) => r['QUERY PLAN'])
        .join('\n');
      expect(catalog).toMatch(/Scan/);
      expect(catalog).not.toMatch(/rows=|cost=/);
    } finally {
      await c.end();
    }
  });
});

describe('prepared statement names', () => {
  it('a named statement cannot be redefined to shed its Bind-time tenant check', async () => {
    const c = await RawClient.connect(proxy.port);
    await c.login('support-bot', db.name, await proxy.token({ tenant: 'acme' }));
    const before = await globexChecksum();
    // s1 checks at Bind that $1 is acme; then the attacker redefines s1 with a statement that has no check.
    c.send(
      Buffer.concat([
        serialize.parse({ name: 's1', text: 'INSERT INTO orders (org_id, total) VALUES ($1, 1)' }),
        serialize.sync(),
        serialize.parse({ name: 's1', text: 'SELECT 1 FROM products' }),
        serialize.sync(),
        serialize.bind({ statement: 's1', values: ['globex'] }),
        serialize.execute({}),
        serialize.sync(),
      ]),
    );
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['1', 'Z']);
    const redefine = await c.untilReady();
    expect(errorOf(redefine[0])).toMatchObject({
      code: '42501',
      message: expect.stringContaining('already exists'),
    });
    const bind = await c.untilReady();
    expect(errorOf(bind[0])).toMatchObject({ code: '42501' });
    expect(await globexChecksum()).toBe(before);
    c.close();
  });

  it('SQL PREPARE cannot take over the name of a protocol statement (or the reverse)', async () => {
    const c = await RawClient.connect(proxy.port);
    await c.login('support-bot', db.name, await proxy.token({ tenant: 'acme' }));
    const before = await globexChecksum();
    c.send(
      Buffer.concat([
        serialize.parse({ name: 's9', text: 'INSERT INTO orders (org_id, total) VALUES ($1, 1)' }),
        serialize.sync(),
        serialize.query('PREPARE s9 AS SELECT 1 FROM products'),
        serialize.query("EXECUTE s9('globex')"),
        serialize.query('PREPARE q9 AS SELECT 1 FROM products'),
        serialize.parse({ name: 'q9', text: 'SELECT 2 FROM products' }),
        serialize.sync(),
      ]),
    );
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['1', 'Z']);
    expect(errorOf((await c.untilReady())[0])).toMatchObject({
      code: '42501',
      message: expect.stringContaining('already exists'),
    });
    expect(errorOf((await c.untilReady())[0])).toMatchObject({ code: '26000' });
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['C', 'Z']);
    expect(errorOf((await c.untilReady())[0])).toMatchObject({
      code: '42501',
      message: expect.stringContaining('already exists'),
    });
    expect(await globexChecksum()).toBe(before);
    c.close();
  });

  it('benign: the unnamed statement is redefined freely, and a closed name can be reused', async () => {
    const c = await RawClient.connect(proxy.port);
    await c.login('support-bot', db.name, await proxy.token({ tenant: 'acme' }));
    c.send(
      Buffer.concat([
        serialize.parse({ text: 'SELECT 1 FROM products' }),
        serialize.parse({ text: 'SELECT 2 FROM products' }),
        serialize.parse({ name: 's2', text: 'SELECT 3 FROM products' }),
        serialize.close({ type: 'S', name: 's2' }),
        serialize.parse({ name: 's2', text: 'SELECT 4 FROM products LIMIT 1' }),
        serialize.bind({ statement: 's2' }),
        serialize.execute({}),
        serialize.sync(),
      ]),
    );
    const msgs = await c.untilReady();
    expect(msgs.map((m) => m.code).join('')).toBe('111312DCZ');
    c.close();
  });
});

describe('COPY through the proxy', () => {
  it('streams COPY (query) TO STDOUT scoped to the tenant, and refuses COPY FROM STDIN', async () => {
    const url = await proxy.url({ tenant: 'globex', human: 'bob@globex.test' });
    // psql runs asynchronously: the proxy lives in this test's event loop.
    const { stdout } = await run('psql', [url, '-XAtc', 'COPY (SELECT org_id FROM orders) TO STDOUT']);
    const lines = stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    expect(new Set(lines)).toEqual(new Set(['globex']));
    const before = await globexChecksum();
    const refused = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const p = spawn('psql', [url, '-Xc', 'COPY orders FROM STDIN']);
      let stderr = '';
      p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      p.on('close', (code) => resolve({ code, stderr }));
      p.stdin.end('1\tglobex\n\\.\n');
    });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/ERROR/);
    expect(await globexChecksum()).toBe(before);
  });
});

describe('through the proxy', () => {
  it('each tenant reads only its own rows, with masks, in both protocols', async () => {
    for (const tenant of ['acme', 'globex']) {
      const c = await client(tenant);
      try {
        const want = await db.sql(`SELECT id, total FROM orders WHERE org_id = $1 ORDER BY id`, [tenant]);
        expect((await c.query('SELECT id, total FROM orders ORDER BY id')).rows).toEqual(want);
        expect((await c.query('SELECT id, total FROM orders WHERE id > $1 ORDER BY id', [0])).rows).toEqual(
          want,
        );
        const emails = (
          await c.query('SELECT DISTINCT org_id, email ~ $1 AS masked FROM customers', ['^.\\*\\*\\*@'])
        ).rows;
        expect(emails).toEqual([{ org_id: tenant, masked: true }]);
      } finally {
        await c.end();
      }
    }
  });

  it('denials arrive as 42501 with an actionable message, and the session goes on', async () => {
    const c = await client('acme');
    try {
      await expect(c.query('SELECT ssn FROM customers')).rejects.toMatchObject({ code: '42501' });
      await expect(c.query("SELECT * FROM orders WHERE org_id = 'globex'")).rejects.toThrow(
        /tenant 'globex'/,
      );
      await expect(c.query('SELECT * FROM internal_notes')).rejects.toThrow(/available: public.customers/);
      expect((await c.query('SELECT count(*)::int AS n FROM products')).rows).toEqual([{ n: 3 }]);
      const denied = proxy.sink.records.filter((r) => r.verdict === 'deny');
      expect(denied.map((r) => r.reasons.at(-1))).toEqual(
        expect.arrayContaining(['column_denied', 'cross_tenant_literal', 'table_not_listed']),
      );
      expect(denied.find((r) => r.flags.includes('cross_tenant_attempt'))).toBeDefined();
      // Every rewrite that reads a tenant table carries the tenant filter (an INSERT's VALUES get
      // the tenant value instead; schema listings are filtered by name).
      const rewrites = proxy.sink.records.filter(
        (r) =>
          r.verdict === 'rewrite' &&
          !/^INSERT .* VALUES/.test(r.sql ?? '') &&
          r.tables.some((t) => t === 'public.orders' || t === 'public.customers'),
      );
      expect(rewrites.length).toBeGreaterThan(0);
      expect(rewrites.every((r) => r.rewrittenSql?.includes('OPERATOR(pg_catalog.=)'))).toBe(true);
    } finally {
      await c.end();
    }
  });

  it('writes through the proxy never touch the other tenant; a Bind value of another tenant is refused', async () => {
    const before = await globexChecksum();
    const c = await client('acme');
    try {
      await c.query('BEGIN');
      await c.query(`INSERT INTO orders (customer_id, total) VALUES (1, 5)`);
      await c.query('INSERT INTO orders (org_id, total) VALUES ($1, $2)', ['acme', 6]);
      await c.query(`UPDATE orders SET status = 'e2e'`);
      await c.query(`DELETE FROM orders WHERE status = 'e2e' AND total < 7`);
      await c.query('COMMIT');
      await expect(
        c.query('INSERT INTO orders (org_id, total) VALUES ($1, $2)', ['globex', 1]),
      ).rejects.toMatchObject({
        code: '42501',
      });
    } finally {
      await c.end();
    }
    expect(await globexChecksum()).toBe(before);
    const acme = await db.sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM orders WHERE org_id = 'acme' AND status = 'e2e'`,
    );
    expect(acme[0]!.n).toBeGreaterThan(0);
  });

  it('judges FETCH against what the name holds now: a portal bound after a cursor of its name ended (red team, round 28)', async () => {
    const c = await rawSession('acme');
    const dataRows = (round: RawMessage[]): string[] =>
      round.filter((m) => m.code === 'D').map((m) => m.body.subarray(6).toString());
    try {
      await simpleQuery(c, 'BEGIN; DECLARE c CURSOR FOR SELECT id, org_id FROM customers; COMMIT');
      await simpleQuery(c, 'BEGIN');
      // The server dropped c at COMMIT, and so does pgwarden (red team, round 48): a portal may
      // take its name. FETCH c then runs the portal, whose statement was judged (and scoped) at
      // its Parse, not the cursor's query: asyncpg's Cursor.forward is a MOVE on such a portal.
      const [bound] = await pipeline(
        c,
        1,
        serialize.parse({ text: 'SELECT org_id FROM orders ORDER BY id' }),
        serialize.bind({ portal: 'c' }),
        serialize.execute({ portal: 'c', rows: 1 }),
        serialize.sync(),
      );
      expect(codes(bound)).toBe('12DsZ');
      expect(codes(await simpleQuery(c, 'MOVE 1 IN c'))).toBe('CZ');
      const rest = await simpleQuery(c, 'FETCH ALL FROM c');
      expect(codes(rest.slice(0, 2))).toBe('TD');
      expect(new Set(dataRows(rest))).toEqual(new Set(['acme']));
      // A name no cursor or portal of the session has is refused: pgwarden cannot tell what it runs.
      expect(errorOf((await simpleQuery(c, 'FETCH ALL FROM d'))[0])).toMatchObject({
        code: '34000',
        message: expect.stringContaining('cursor d was not declared through pgwarden'),
      });
      await simpleQuery(c, 'ROLLBACK');
      // A cursor declared again under that name is fetched as the cursor.
      await simpleQuery(c, 'BEGIN; DECLARE c CURSOR FOR SELECT id FROM products');
      expect(codes(await simpleQuery(c, 'FETCH 1 FROM c'))).toBe('TDCZ');
      await simpleQuery(c, 'COMMIT');
    } finally {
      c.close();
    }
  });

  it("asyncpg's Cursor.forward (a MOVE on the portal it bound) and fetch read the tenant's rows", async () => {
    // Debian's python3-asyncpg (installed by .ci/run).
    const script = [
      'import asyncio, sys, asyncpg',
      'async def main():',
      '    c = await asyncpg.connect(sys.argv[1], ssl=False)',
      '    async with c.transaction():',
      "        cur = await c.cursor('SELECT org_id FROM orders ORDER BY id')",
      '        await cur.forward(2)',
      '        print(sorted({r[0] for r in await cur.fetch(1000)}))',
      '    await c.close()',
      'asyncio.run(main())',
    ].join('\n');
    const { stdout } = await run('/usr/bin/python3', ['-c', script, await proxy.url({ tenant: 'acme' })]);
    expect(stdout.trim()).toBe("['acme']");
  });

  it("items go only under orders of the caller: another tenant's order is refused as 42501 and nothing is written", async () => {
    const before = await db.sql<{ h: string }>(
      `SELECT md5(coalesce(string_agg(i::text, ',' ORDER BY i.id), '')) AS h
       FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.org_id = 'globex'`,
    );
    const [ids] = await db.sql<{ acme: string; globex: string }>(
      `SELECT min(id) FILTER (WHERE org_id = 'acme') AS acme, min(id) FILTER (WHERE org_id = 'globex') AS globex FROM orders`,
    );
    const c = await client('acme');
    try {
      const added = await c.query<{ sku: string }>(
        'INSERT INTO order_items (order_id, sku, qty) VALUES ($1, $2, 1) RETURNING sku',
        [ids!.acme, 'E2E-OK'],
      );
      expect(added.rows).toEqual([{ sku: 'E2E-OK' }]);
      for (const run of [
        () =>
          c.query('INSERT INTO order_items (order_id, sku, qty) VALUES ($1, $2, 1)', [ids!.globex, 'E2E-X']),
        () => c.query(`INSERT INTO order_items (order_id, sku, qty) VALUES (${ids!.globex}, 'E2E-X', 1)`),
      ])
        await expect(run()).rejects.toMatchObject({
          code: '42501',
          message: expect.stringMatching(
            /^public\.order_items\.order_id must reference a row of public\.orders/,
          ),
        });
      // Checked once for a multi-row VALUES: the statement's refusal says no row was written.
      await expect(
        c.query(
          `INSERT INTO order_items (order_id, sku, qty) VALUES (${ids!.acme}, 'E2E-X', 1), (${ids!.globex}, 'E2E-X', 1)`,
        ),
      ).rejects.toMatchObject({ code: '42501', message: expect.stringMatching(/no row was written$/) });
      // An agent's own cast of a text that looks like pgwarden's refusal is the server's error, and
      // its bind value is redacted from the record like any other (red team, round 25).
      await expect(
        c.query('INSERT INTO order_items (order_id, sku, qty) VALUES ($1, $2::int::text, 1)', [
          ids!.acme,
          'pgwarden: SECRET-BIND-VALUE',
        ]),
      ).rejects.toMatchObject({ code: '22P02' });
      // The same at run time (a scalar subquery is not folded at Bind), in the words of a refusal
      // on a table the statement does not touch (red team, round 26).
      await expect(
        c.query(
          'INSERT INTO order_items (order_id, sku, qty) VALUES ($1, $2, CAST((SELECT $3::text) AS int))',
          [
            ids!.acme,
            'E2E-X',
            'pgwarden: SECRET-BIND-VALUE must reference a row of public.customers in tenant acme; the row was not written',
          ],
        ),
      ).rejects.toMatchObject({ code: '22P02' });
      await vi.waitFor(() =>
        expect(
          proxy.sink.outcomes.some((o) => o.sqlstate === '22P02' && o.errorMessage?.includes('[redacted]')),
        ).toBe(true),
      );
      expect(JSON.stringify(proxy.sink.outcomes)).not.toContain('SECRET-BIND-VALUE');
      // The refusal fails the transaction like any error, and the session goes on after ROLLBACK.
      await c.query('BEGIN');
      await expect(
        c.query('INSERT INTO order_items (order_id, sku, qty) VALUES ($1, $2, 1)', [ids!.globex, 'E2E-X']),
      ).rejects.toMatchObject({ code: '42501' });
      await expect(c.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
      await c.query('ROLLBACK');
      const mine = await c.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM order_items WHERE sku = 'E2E-OK'`,
      );
      expect(mine.rows[0]!.n).toBe(1);
      const deleted = await c.query(`DELETE FROM order_items WHERE sku LIKE 'SKU-%' AND qty = 1`);
      expect(deleted.rowCount).toBeGreaterThan(0);
    } finally {
      await c.end();
    }
    const after = await db.sql<{ h: string }>(
      `SELECT md5(coalesce(string_agg(i::text, ',' ORDER BY i.id), '')) AS h
       FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.org_id = 'globex'`,
    );
    expect(after[0]!.h).toBe(before[0]!.h);
    const stray = await db.sql<{ n: number }>(
      `SELECT count(*)::int AS n FROM order_items WHERE sku = 'E2E-X'`,
    );
    expect(stray[0]!.n).toBe(0);
  });
});

/** A raw protocol session for the tenant, logged in. */
async function rawSession(tenant = 'acme'): Promise<RawClient> {
  const c = await RawClient.connect(proxy.port);
  await c.login('support-bot', db.name, await proxy.token({ tenant, human: `alice@${tenant}.test` }));
  return c;
}

/** Sends the messages at once and reads the answers, one list per ReadyForQuery. */
async function pipeline(c: RawClient, rounds: number, ...messages: Buffer[]): Promise<RawMessage[][]> {
  c.send(Buffer.concat(messages));
  const out: RawMessage[][] = [];
  for (let i = 0; i < rounds; i++) out.push(await c.untilReady());
  return out;
}

/** Sends one simple Query and reads its answers, up to ReadyForQuery. */
async function simpleQuery(c: RawClient, sql: string): Promise<RawMessage[]> {
  return (await pipeline(c, 1, serialize.query(sql)))[0]!;
}

const codes = (round: RawMessage[] | undefined): string => (round ?? []).map((m) => m.code).join('');
const tenantInsert = (total: number): string =>
  `INSERT INTO orders (org_id, total) VALUES ($1, ${total}) RETURNING id`;

describe("pgwarden's mirror of prepared statements, portals and cursors follows the server", () => {
  it('a Parsed EXECUTE or FETCH is judged again once the names it uses change (red team, round 48)', async () => {
    const c = await RawClient.connect(proxy.port);
    await c.login('support-bot', db.name, await proxy.token({ tenant: 'acme' }));
    const before = await globexChecksum();
    const round = async (...msgs: Buffer[]): Promise<RawMessage[]> => {
      c.send(Buffer.concat([...msgs, serialize.sync()]));
      return c.untilReady();
    };
    const query = (sql: string): Promise<RawMessage[]> => simpleQuery(c, sql);
    try {
      await query('PREPARE p(text, numeric) AS SELECT $1::text AS a, $2::numeric AS b');
      // e is judged while p is that SELECT; run then, it is (the look-alike).
      expect(
        (await round(serialize.parse({ name: 'e', text: "EXECUTE p('globex', 4242)" }))).map((m) => m.code),
      ).toEqual(['1', 'Z']);
      expect(
        (await round(serialize.bind({ statement: 'e' }), serialize.execute({}))).map((m) => m.code),
      ).toEqual(['2', 'D', 'C', 'Z']);
      // The attack: p becomes a protocol INSERT whose tenant value only a protocol Bind checks.
      await query('DEALLOCATE p');
      expect(
        (
          await round(
            serialize.parse({ name: 'p', text: 'INSERT INTO orders (org_id, total) VALUES ($1, $2)' }),
          )
        ).map((m) => m.code),
      ).toEqual(['1', 'Z']);
      const bound = await round(serialize.bind({ statement: 'e' }), serialize.execute({}));
      expect(errorOf(bound[0])).toMatchObject({
        code: '26000',
        message: expect.stringContaining('was not prepared through pgwarden'),
      });
      // In one pipeline too: the name changes between e's Bind and its Execute.
      await round(serialize.close({ type: 'S', name: 'p' }));
      await query('PREPARE p(text, numeric) AS SELECT $1::text AS a, $2::numeric AS b');
      c.send(
        Buffer.concat([
          serialize.bind({ statement: 'e', portal: 'pe' }),
          serialize.close({ type: 'S', name: 'p' }),
          serialize.parse({ name: 'p', text: 'INSERT INTO orders (org_id, total) VALUES ($1, $2)' }),
          serialize.execute({ portal: 'pe' }),
          serialize.sync(),
        ]),
      );
      const late = await c.untilReady();
      expect(late.map((m) => m.code)).toEqual(['2', '3', '1', 'E', 'Z']);
      expect(errorOf(late[3])).toMatchObject({ code: '26000' });
      expect(await globexChecksum()).toBe(before);
    } finally {
      c.close();
    }
  });

  it('PREPARE refuses a tenant parameter EXECUTE would pass unchecked, by Query or by Parse', async () => {
    const before = await globexChecksum();
    const c = await rawSession();
    const [prepare, execute] = await pipeline(
      c,
      2,
      serialize.query(`PREPARE p1(text) AS ${tenantInsert(1001)}`),
      serialize.query("EXECUTE p1('globex')"),
    );
    expect(errorOf(prepare![0])).toMatchObject({
      code: '42501',
      message: expect.stringContaining("write your tenant as a literal ('acme')"),
    });
    expect(errorOf(execute![0])).toMatchObject({ code: '26000' });
    const [parsed] = await pipeline(
      c,
      1,
      serialize.parse({ text: `PREPARE p2(text) AS ${tenantInsert(1002)}` }),
      serialize.bind({}),
      serialize.execute({}),
      serialize.sync(),
    );
    expect(errorOf(parsed![0])).toMatchObject({ code: '42501', message: expect.stringContaining('literal') });
    expect(await globexChecksum()).toBe(before);
    // Benign: PREPARE / EXECUTE without a tenant parameter (a literal tenant, or none) works.
    const ok = await pipeline(
      c,
      3,
      serialize.query(
        "PREPARE p3(numeric) AS INSERT INTO orders (org_id, total) VALUES ('acme', $1) RETURNING org_id",
      ),
      serialize.query('EXECUTE p3(1003)'),
      serialize.query(
        'PREPARE p4(numeric) AS INSERT INTO orders (total) VALUES ($1) RETURNING org_id; EXECUTE p3(1004)',
      ),
    );
    expect(ok.map(codes)).toEqual(['CZ', 'TDCZ', 'CTDCZ']);
    const [again] = await pipeline(c, 1, serialize.query('EXECUTE p4(1005)'));
    expect(codes(again)).toBe('TDCZ');
    expect(again![1]!.body.toString()).toContain('acme');
    c.close();
  });

  it('every PREPARE of a multi-statement query is recorded, so its name cannot be taken over', async () => {
    const c = await rawSession();
    const [two, exec, parse, twice] = await pipeline(
      c,
      4,
      serialize.query('PREPARE w1 AS SELECT 1 FROM products LIMIT 1; PREPARE z1 AS SELECT 2'),
      serialize.query('EXECUTE w1'),
      serialize.parse({ name: 'w1', text: tenantInsert(1011) }),
      serialize.sync(),
      serialize.query('PREPARE d1 AS SELECT 1; PREPARE d1 AS SELECT 2'),
    );
    expect(codes(two)).toBe('CCZ');
    expect(codes(exec)).toBe('TDCZ');
    expect(errorOf(parse![0])).toMatchObject({
      code: '42501',
      message: expect.stringContaining('already exists'),
    });
    expect(errorOf(twice![0])).toMatchObject({
      code: '42501',
      message: expect.stringContaining('already exists'),
    });
    // Benign: DEALLOCATE then PREPARE of the same name, in one query or in two.
    const ok = await pipeline(
      c,
      3,
      serialize.query('DEALLOCATE w1; PREPARE w1 AS SELECT 3'),
      serialize.query('DEALLOCATE w1'),
      serialize.query('PREPARE w1 AS SELECT 4; EXECUTE z1'),
    );
    expect(ok.map(codes)).toEqual(['CCZ', 'CZ', 'CTDCZ']);
    c.close();
  });

  it('a Close the server skips after an error leaves the statement pgwarden checks Bind against', async () => {
    const before = await globexChecksum();
    const c = await rawSession();
    const [prepared, failed, redefine, bind] = await pipeline(
      c,
      4,
      serialize.parse({ name: 'x1', text: tenantInsert(1021) }),
      serialize.sync(),
      serialize.parse({ text: 'SELECT 1/0' }),
      serialize.bind({}),
      serialize.execute({}),
      serialize.close({ type: 'S', name: 'x1' }),
      serialize.sync(),
      serialize.parse({ name: 'x1', text: 'SELECT $1::text' }),
      serialize.sync(),
      serialize.bind({ statement: 'x1', values: ['globex'] }),
      serialize.execute({}),
      serialize.sync(),
    );
    expect(codes(prepared)).toBe('1Z');
    expect(codes(failed)).toBe('1EZ');
    expectStillTaken(redefine, bind);
    expect(await globexChecksum()).toBe(before);
    // Benign: Close, then a new Parse of the name in the next pipeline; and Parse / Bind /
    // Execute of one name in one pipeline.
    const ok = await pipeline(
      c,
      3,
      serialize.close({ type: 'S', name: 'x1' }),
      serialize.sync(),
      serialize.parse({ name: 'x1', text: 'SELECT $1::text' }),
      serialize.bind({ statement: 'x1', values: ['globex'] }),
      serialize.execute({}),
      serialize.sync(),
      serialize.parse({ name: 'x2', text: tenantInsert(1022) }),
      serialize.bind({ statement: 'x2', values: ['acme'] }),
      serialize.execute({}),
      serialize.sync(),
    );
    expect(ok.map(codes)).toEqual(['3Z', '12DCZ', '12DCZ']);
    c.close();
  });

  it('a DEALLOCATE the server refuses in a failed transaction leaves the statement in place', async () => {
    const before = await globexChecksum();
    const c = await rawSession();
    const [prepared, failed, dealloc, rollback, redefine, bind] = await pipeline(
      c,
      6,
      serialize.parse({ name: 'y1', text: tenantInsert(1031) }),
      serialize.sync(),
      serialize.query('BEGIN; SELECT 1/0'),
      serialize.query('DEALLOCATE y1'),
      serialize.query('ROLLBACK'),
      serialize.parse({ name: 'y1', text: 'SELECT $1::text' }),
      serialize.sync(),
      serialize.bind({ statement: 'y1', values: ['globex'] }),
      serialize.execute({}),
      serialize.sync(),
    );
    expect(codes(prepared)).toBe('1Z');
    expect(codes(failed)).toBe('CEZ');
    expect(errorOf(dealloc![0])).toMatchObject({ code: '25P02' });
    expect(codes(rollback)).toBe('CZ');
    expectStillTaken(redefine, bind);
    // The same in one query: the DEALLOCATE after the failing statement never runs.
    const [inOne, redefine2] = await pipeline(
      c,
      2,
      serialize.query('SELECT 1/0; DEALLOCATE y1'),
      serialize.parse({ name: 'y1', text: 'SELECT $1::text' }),
      serialize.sync(),
    );
    expect(codes(inOne)).toBe('EZ');
    expect(errorOf(redefine2![0])).toMatchObject({
      code: '42501',
      message: expect.stringContaining('already exists'),
    });
    // Nor can the name pass for a SQL-level statement, which EXECUTE would run unchecked.
    const [, , , retake, execute] = await pipeline(
      c,
      5,
      serialize.query('BEGIN; SELECT 1/0'),
      serialize.query('DEALLOCATE y1'),
      serialize.query('ROLLBACK'),
      serialize.query('PREPARE y1(text) AS SELECT $1'),
      serialize.query("EXECUTE y1('globex')"),
    );
    expect(errorOf(retake![0])).toMatchObject({
      code: '42501',
      message: expect.stringContaining('already exists'),
    });
    expect(errorOf(execute![0])).toMatchObject({ code: '26000' });
    expect(await globexChecksum()).toBe(before);
    // Benign: a DEALLOCATE that runs frees the name for a new statement.
    const ok = await pipeline(
      c,
      2,
      serialize.query('DEALLOCATE y1'),
      serialize.parse({ name: 'y1', text: 'SELECT $1::text' }),
      serialize.bind({ statement: 'y1', values: ['globex'] }),
      serialize.execute({}),
      serialize.sync(),
    );
    expect(ok.map(codes)).toEqual(['CZ', '12DCZ']);
    c.close();
  });

  it('a Parse of the unnamed statement the server skips after an error is not believed', async () => {
    const before = await globexChecksum();
    const c = await rawSession();
    const [prepared, failed, bind] = await pipeline(
      c,
      3,
      serialize.parse({ text: tenantInsert(1041) }),
      serialize.sync(),
      serialize.parse({ name: 'e1', text: 'SELECT 1/0' }),
      serialize.bind({ statement: 'e1' }),
      serialize.execute({}),
      serialize.parse({ text: 'SELECT $1::text' }),
      serialize.sync(),
      serialize.bind({ values: ['globex'] }),
      serialize.execute({}),
      serialize.sync(),
    );
    expect(codes(prepared)).toBe('1Z');
    expect(codes(failed)).toBe('1EZ');
    expect(errorOf(bind![0])).toMatchObject({ code: '42501' });
    expect(await globexChecksum()).toBe(before);
    c.close();
  });

  it('a DEALLOCATE sent by Parse takes effect when it is executed, not when it is parsed', async () => {
    const before = await globexChecksum();
    const c = await rawSession();
    const [prepared, parsedOnly, redefine, bind] = await pipeline(
      c,
      4,
      serialize.parse({ name: 'v1', text: tenantInsert(1051) }),
      serialize.sync(),
      serialize.parse({ name: 'dv1', text: 'DEALLOCATE v1' }),
      serialize.sync(),
      serialize.parse({ name: 'v1', text: 'SELECT $1::text' }),
      serialize.sync(),
      serialize.bind({ statement: 'v1', values: ['globex'] }),
      serialize.execute({}),
      serialize.sync(),
    );
    expect(codes(prepared)).toBe('1Z');
    expect(codes(parsedOnly)).toBe('1Z');
    expectStillTaken(redefine, bind);
    expect(await globexChecksum()).toBe(before);
    // Benign: executed, it frees the name.
    const ok = await pipeline(
      c,
      2,
      serialize.bind({ statement: 'dv1' }),
      serialize.execute({}),
      serialize.sync(),
      serialize.parse({ name: 'v1', text: 'SELECT $1::text' }),
      serialize.bind({ statement: 'v1', values: ['globex'] }),
      serialize.execute({}),
      serialize.sync(),
    );
    expect(ok.map(codes)).toEqual(['2CZ', '12DCZ']);
    c.close();
  });

  it('a tenant parameter must be read as the Bind check reads it: a declared tsvector is refused', async () => {
    const c = await rawSession();
    const [tsvector, text] = await pipeline(
      c,
      2,
      serialize.parse({ text: tenantInsert(1061), types: [3614] }),
      serialize.bind({ values: ['acme'] }),
      serialize.execute({}),
      serialize.sync(),
      serialize.parse({ text: tenantInsert(1062), types: [25] }),
      serialize.bind({ values: ['acme'] }),
      serialize.execute({}),
      serialize.sync(),
    );
    expect(errorOf(tsvector![0])).toMatchObject({
      code: '42501',
      message: expect.stringMatching(/\$1 .*OID 3614; declare it as text \(25\), varchar \(1043\)/),
    });
    // Benign: a declared text type is read as the check reads it.
    expect(codes(text)).toBe('12DCZ');
    const rows = await db.sql<{ org_id: string; total: string }>(
      'SELECT org_id, total::text AS total FROM orders WHERE total IN (1061, 1062) ORDER BY total',
    );
    expect(rows).toEqual([{ org_id: 'acme', total: '1062.00' }]);
    c.close();
  });

  it("a declared parameter type never names the database's own types or resolves names", async () => {
    const [row] = await db.sql<{ oid: number }>(
      "SELECT oid::int AS oid FROM pg_type WHERE typname = 'internal_notes'",
    );
    const c = await rawSession();
    const [rowType, regclass, builtin] = await pipeline(
      c,
      3,
      // ($1).* with $1 declared as an unlisted table's row type would list that table's columns.
      serialize.parse({ text: 'SELECT ($1).*', types: [row!.oid] }),
      serialize.bind({ values: [null] }),
      serialize.execute({}),
      serialize.sync(),
      // regclass input succeeds or fails by whether a relation of that name exists.
      serialize.parse({ text: 'SELECT $1 IS NULL', types: [2205] }),
      serialize.bind({ values: ['internal_notes'] }),
      serialize.execute({}),
      serialize.sync(),
      // Benign: built-in data types.
      serialize.parse({ text: 'SELECT $1::int + 1, $2', types: [23, 1184] }),
      serialize.bind({ values: ['41', '2026-01-01 00:00:00+00'] }),
      serialize.execute({}),
      serialize.sync(),
    );
    for (const refused of [rowType, regclass])
      expect(errorOf(refused![0])).toMatchObject({
        code: '42501',
        message: expect.stringMatching(
          /^parameter \$1 is declared with type OID \d+, which agents may not use/,
        ),
      });
    expect(codes(builtin)).toBe('12DCZ');
    c.close();
  });

  it('a statement or portal name the server would cut to 63 bytes is refused in every message', async () => {
    const before = await globexChecksum();
    const c = await rawSession();
    const base = 'n'.repeat(63);
    const [a, closeB, parseB, bindA, others, utf8] = await pipeline(
      c,
      6,
      // To the server `${base}A` and `${base}B` are one statement, `${base}`.
      serialize.parse({ name: `${base}A`, text: 'SELECT $1::text AS x' }),
      serialize.sync(),
      serialize.close({ type: 'S', name: `${base}B` }),
      serialize.sync(),
      serialize.parse({ name: `${base}B`, text: tenantInsert(1071) }),
      serialize.sync(),
      serialize.bind({ statement: `${base}A`, values: ['globex'] }),
      serialize.execute({}),
      serialize.sync(),
      // A long portal name in Bind, Describe, Execute and Close, each in its own pipeline.
      serialize.parse({ name: 'ln1', text: 'SELECT 1' }),
      serialize.bind({ statement: 'ln1', portal: `${base}P` }),
      serialize.sync(),
      // 32 two-byte characters: 64 bytes, though only 32 characters.
      serialize.describe({ type: 'S', name: 'é'.repeat(32) }),
      serialize.sync(),
    );
    for (const refused of [a, closeB, parseB, bindA, utf8])
      expect(errorOf(refused![0]), codes(refused)).toMatchObject({
        code: '42501',
        message: expect.stringContaining('use a name of at most 63 bytes'),
      });
    expect(codes(others)).toBe('1EZ');
    expect(errorOf(others![1])).toMatchObject({
      code: '42501',
      message: expect.stringContaining('64 bytes'),
    });
    for (const m of [
      serialize.execute({ portal: `${base}P` }),
      serialize.describe({ type: 'P', name: `${base}P` }),
      serialize.close({ type: 'P', name: `${base}P` }),
    ]) {
      const [round] = await pipeline(c, 1, m, serialize.sync());
      expect(errorOf(round![0])).toMatchObject({
        code: '42501',
        message: expect.stringContaining('63 bytes'),
      });
    }
    expect(await globexChecksum()).toBe(before);
    const refusals = proxy.sink.records.filter((r) => r.reasons.includes('name_too_long'));
    expect(
      refusals.some((r) => r.protocol?.statementName === `${base}B` && r.sql === tenantInsert(1071)),
    ).toBe(true);
    // Benign: names of exactly 63 bytes (one of them multi-byte) work in every message.
    const p63 = 'é'.repeat(31) + 'x';
    const [ok] = await pipeline(
      c,
      1,
      serialize.parse({ name: base, text: 'SELECT $1::text AS x' }),
      serialize.bind({ statement: base, portal: p63, values: ['globex'] }),
      serialize.describe({ type: 'P', name: p63 }),
      serialize.execute({ portal: p63 }),
      serialize.close({ type: 'P', name: p63 }),
      serialize.close({ type: 'S', name: base }),
      serialize.sync(),
    );
    expect(codes(ok)).toBe('12TDC33Z');
    c.close();
  });

  it('a portal ends with its transaction: a cursor of the same name is not run as the old statement', async () => {
    const c = await rawSession();
    const [bound, declared, executed, rolledBack, execZ] = await pipeline(
      c,
      5,
      // Portal c1 is made in the implicit transaction that Sync ends: the server drops it there.
      serialize.parse({ name: 'ps1', text: 'PREPARE pz1 AS SELECT 1' }),
      serialize.bind({ statement: 'ps1', portal: 'c1' }),
      serialize.sync(),
      serialize.query('BEGIN; DECLARE c1 CURSOR FOR SELECT name, email FROM customers'),
      serialize.execute({ portal: 'c1', rows: 2 }),
      serialize.sync(),
      serialize.query('ROLLBACK'),
      // Had pgwarden taken the Execute for ps1, it would believe pz1 prepared.
      serialize.query('EXECUTE pz1'),
    );
    expect(codes(bound)).toBe('12Z');
    expect(codes(declared)).toBe('CCZ');
    expect(errorOf(executed![0])).toMatchObject({
      code: '34000',
      message: expect.stringContaining('ended with its transaction'),
    });
    expect(codes(rolledBack)).toBe('CZ');
    expect(errorOf(execZ![0])).toMatchObject({ code: '26000', message: expect.stringContaining('pz1') });
    // The same inside a transaction block that COMMIT; BEGIN ends and restarts (the status stays
    // 'T'), and after a SQL-level CLOSE, which drops the portal as well.
    for (const [name, between] of [
      ['c2', 'COMMIT; BEGIN'],
      ['c3', 'CLOSE c3'],
    ] as const) {
      const [begin, bind, declare, execute, rollback] = await pipeline(
        c,
        5,
        serialize.query('BEGIN'),
        serialize.bind({ statement: 'ps1', portal: name }),
        serialize.sync(),
        serialize.query(`${between}; DECLARE ${name} CURSOR FOR SELECT name, email FROM customers`),
        serialize.execute({ portal: name, rows: 2 }),
        serialize.sync(),
        serialize.query('ROLLBACK'),
      );
      expect([begin, bind, declare].map(codes), between).toEqual([
        'CZ',
        '2Z',
        between.startsWith('COMMIT') ? 'CCCZ' : 'CCZ',
      ]);
      expect(errorOf(execute![0]), between).toMatchObject({ code: '34000' });
      expect(codes(rollback)).toBe('CZ');
    }
    // Ends pgwarden does not see as ends of the portal (red team, round 55): ROLLBACK TO SAVEPOINT
    // drops the portals bound since the savepoint, and a COMMIT in the same pipeline drops the
    // portal before its answer comes. A DECLARE of the name then takes it over on the server.
    const declare = (name: string): Buffer[] => [
      serialize.parse({ text: `DECLARE ${name} CURSOR FOR SELECT name, email FROM customers` }),
      serialize.bind({}),
      serialize.execute({}),
    ];
    const run = (sql: string): Buffer[] => [
      serialize.parse({ text: sql }),
      serialize.bind({}),
      serialize.execute({}),
    ];
    const [savepoint, boundC4, afterRollbackTo, rolledBackC4] = await pipeline(
      c,
      4,
      serialize.query('BEGIN; SAVEPOINT s'),
      serialize.bind({ statement: 'ps1', portal: 'c4' }),
      serialize.sync(),
      ...run('ROLLBACK TO SAVEPOINT s'),
      ...declare('c4'),
      serialize.execute({ portal: 'c4', rows: 2 }),
      serialize.sync(),
      serialize.query('ROLLBACK'),
    );
    expect([savepoint, boundC4].map(codes)).toEqual(['CCZ', '2Z']);
    expect(codes(afterRollbackTo)).toBe('12C12CEZ');
    expect(errorOf(afterRollbackTo![6])).toMatchObject({ code: '34000' });
    expect(codes(rolledBackC4)).toBe('CZ');
    const [begun, pipelined, rolledBackC5] = await pipeline(
      c,
      3,
      serialize.query('BEGIN'),
      serialize.bind({ statement: 'ps1', portal: 'c5' }),
      ...run('COMMIT'),
      ...run('BEGIN'),
      ...declare('c5'),
      serialize.execute({ portal: 'c5', rows: 2 }),
      serialize.sync(),
      serialize.query('ROLLBACK'),
    );
    expect(codes(begun)).toBe('CZ');
    expect(codes(pipelined)).toBe('2' + '12C'.repeat(3) + 'EZ');
    expect(errorOf(pipelined![10])).toMatchObject({ code: '34000' });
    expect(codes(rolledBackC5)).toBe('CZ');
    const misnamed = proxy.sink.records.filter(
      (r) => r.verdict !== 'deny' && ['c1', 'c2', 'c3', 'c4', 'c5'].includes(r.protocol?.portalName ?? ''),
    );
    expect(misnamed).toEqual([]);
    // Benign: a portal lives on across Syncs inside a transaction block, and a Bind forwarded
    // before the server reports the end of an earlier transaction keeps its portal.
    const ok = await pipeline(
      c,
      6,
      serialize.parse({ name: 'ps2', text: 'SELECT name FROM customers ORDER BY id' }),
      serialize.sync(),
      serialize.query('SELECT 1'),
      serialize.query('BEGIN'),
      serialize.bind({ statement: 'ps2', portal: 'k1' }),
      serialize.execute({ portal: 'k1', rows: 1 }),
      serialize.sync(),
      serialize.execute({ portal: 'k1', rows: 1 }),
      serialize.sync(),
      serialize.query('COMMIT'),
    );
    expect(ok.map(codes)).toEqual(['1Z', 'TDCZ', 'CZ', '2DsZ', 'DsZ', 'CZ']);
    c.close();
  });

  it('a tenant parameter used a second time elsewhere in the statement is refused', async () => {
    const c = await rawSession();
    const insert = (status: string, total: number): string =>
      `INSERT INTO orders (status, org_id, total) VALUES (${status}, $1, ${total}) RETURNING org_id, status`;
    const [tsvector, char, separate] = await pipeline(
      c,
      3,
      // The server types $1 from its first use: tsvector, whose input turns acme into 'acme'.
      serialize.parse({ text: insert('($1::tsvector)::text', 1081) }),
      serialize.bind({ values: ['acme'] }),
      serialize.execute({}),
      serialize.sync(),
      serialize.parse({ text: insert('($1::"char")::text', 1082) }),
      serialize.bind({ values: ['acme'] }),
      serialize.execute({}),
      serialize.sync(),
      // Benign: a separate parameter for the other use.
      serialize.parse({ text: insert('($2::tsvector)::text', 1083) }),
      serialize.bind({ values: ['acme', 'shipped'] }),
      serialize.execute({}),
      serialize.sync(),
    );
    for (const refused of [tsvector, char])
      expect(errorOf(refused![0])).toMatchObject({
        code: '42501',
        message: expect.stringContaining('use a separate parameter (or a literal) for the other use'),
      });
    expect(codes(separate)).toBe('12DCZ');
    const rows = await db.sql<{ org_id: string; status: string; total: string }>(
      'SELECT org_id, status, total::text AS total FROM orders WHERE total IN (1081, 1082, 1083) ORDER BY total',
    );
    expect(rows).toEqual([{ org_id: 'acme', status: "'shipped'", total: '1083.00' }]);
    c.close();
  });

  it('a cursor ends with its transaction in the mirror too, and makes room; a WITH HOLD one stays (red team, round 48)', async () => {
    const small = await startTestProxy(db, { judge, config: { limits: { maxNamesPerSession: 3 } } });
    const c = await RawClient.connect(small.port);
    const query = async (sql: string): Promise<string> => codes(await simpleQuery(c, sql));
    try {
      await c.login('support-bot', db.name, await small.token());
      // Ten cursors closed by their COMMIT, as drivers close them: each took a name for good.
      for (let i = 0; i < 10; i++)
        expect(await query(`BEGIN; DECLARE c${i} CURSOR FOR SELECT id FROM products; COMMIT`)).toBe('CCCZ');
      expect(await query('PREPARE p1 AS SELECT 1')).toBe('CZ');
      // Its name is free for a portal again.
      c.send(
        Buffer.concat([
          serialize.parse({ name: '', text: 'SELECT id FROM products' }),
          serialize.bind({ portal: 'c0' }),
          serialize.execute({ portal: 'c0' }),
          serialize.sync(),
        ]),
      );
      expect(codes(await c.untilReady())).toMatch(/^12D+CZ$/);
      // The look-alike: a WITH HOLD cursor outlives its COMMIT and still counts.
      expect(await query('BEGIN; DECLARE h CURSOR WITH HOLD FOR SELECT id FROM products; COMMIT')).toBe(
        'CCCZ',
      );
      expect(await query('FETCH 1 FROM h')).toMatch(/^TDCZ$/);
      expect(await query('PREPARE p2 AS SELECT 1')).toBe('CZ');
      c.send(serialize.query('PREPARE p3 AS SELECT 1'));
      expect(errorOf((await c.untilReady())[0])).toMatchObject({ code: '53400' });
    } finally {
      c.close();
      await small.close();
    }
  });

  it('a WITH HOLD cursor leaves the mirror when its transaction rolls back or fails to commit, as it leaves the server', async () => {
    const c = await RawClient.connect(proxy.port);
    const query = (sql: string): Promise<RawMessage[]> => simpleQuery(c, sql);
    /** Binds a portal of this name: refused while pgwarden believes a cursor holds the name. */
    const bindPortal = async (name: string): Promise<string> => {
      c.send(
        Buffer.concat([
          serialize.parse({ name: '', text: 'SELECT id FROM products' }),
          serialize.bind({ portal: name }),
          serialize.execute({ portal: name }),
          serialize.sync(),
        ]),
      );
      return codes(await c.untilReady());
    };
    try {
      await c.login('support-bot', db.name, await proxy.token());
      // Dropped by the server: by ROLLBACK, by a COMMIT that fails (the cursor cannot be read to
      // its end), and with the implicit transaction of a Query that fails after declaring it.
      await query('BEGIN; DECLARE h1 CURSOR WITH HOLD FOR SELECT id FROM products; ROLLBACK');
      const failedCommit = await query(
        'BEGIN; DECLARE h2 CURSOR WITH HOLD FOR SELECT 1 / (random() * 0)::int FROM products; COMMIT',
      );
      expect(errorOf(failedCommit.find((m) => m.code === 'E'))).toMatchObject({ code: '22012' });
      const failedQuery = await query(
        'DECLARE h3 CURSOR WITH HOLD FOR SELECT id FROM products; SELECT 1 / 0',
      );
      expect(errorOf(failedQuery.find((m) => m.code === 'E'))).toMatchObject({ code: '22012' });
      for (const name of ['h1', 'h2', 'h3']) {
        // The name is free for a portal at once, and the cursor is not fetched on pgwarden's word.
        expect(await bindPortal(name)).toMatch(/^12D+CZ$/);
        expect(errorOf((await query(`FETCH 1 FROM ${name}`))[0])).toMatchObject({ code: '34000' });
        expect(errorOf((await query(`CLOSE ${name}`))[0])).toMatchObject({ code: '34000' });
      }
      // The look-alikes: a cursor whose transaction committed stays, whatever fails after it, in
      // a later Query or later in its own.
      expect(
        codes(await query('BEGIN; DECLARE k1 CURSOR WITH HOLD FOR SELECT id FROM products; COMMIT')),
      ).toBe('CCCZ');
      expect(
        errorOf(
          (
            await query(
              'BEGIN; DECLARE k2 CURSOR WITH HOLD FOR SELECT id FROM products; COMMIT; SELECT 1 / 0',
            )
          ).find((m) => m.code === 'E'),
        ),
      ).toMatchObject({ code: '22012' });
      expect(errorOf((await query('SELECT 1 / 0'))[0])).toMatchObject({ code: '22012' });
      for (const name of ['k1', 'k2']) {
        expect(codes(await query(`FETCH 1 FROM ${name}`))).toBe('TDCZ');
        expect(await bindPortal(name)).toBe('1EZ');
      }
    } finally {
      c.close();
    }
  });

  it("a connection pool's reset runs (red team, round 50): pgwarden's pins stay, and DISCARD ALL empties the mirror as it empties the server", async () => {
    const c = new pg.Client({ connectionString: await proxy.url({ tenant: 'acme' }) });
    await c.connect();
    try {
      await c.query('PREPARE p AS SELECT 1');
      await c.query({ name: 's1', text: 'SELECT 1 AS one' });
      await c.query('BEGIN; DECLARE k CURSOR WITH HOLD FOR SELECT id FROM products; COMMIT');
      await c.query("SET TimeZone = 'Asia/Tokyo'");
      // asyncpg's pool, between two users of a connection.
      await c.query('SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;');
      const show = async (name: string): Promise<string> =>
        ((await c.query<Record<string, string>>(`SHOW ${name}`)).rows[0] ?? {})[name] ?? '';
      // Back to the session's start: the server's own defaults, and pgwarden's pins.
      expect(await show('timezone')).not.toBe('Asia/Tokyo');
      expect(await show('statement_timeout')).toBe('30s');
      expect(await show('standard_conforming_strings')).toBe('on');
      expect(await show('application_name')).toBe('pgwarden/support-bot');
      // CLOSE ALL took the cursor.
      await expect(c.query('FETCH 1 FROM k')).rejects.toMatchObject({ code: '34000' });
      await c.query('DISCARD ALL');
      // The server dropped every name: pgwarden runs none of them on its word.
      await expect(c.query('EXECUTE p')).rejects.toMatchObject({ code: '26000' });
      await expect(c.query({ name: 's1', text: 'SELECT 1 AS one' })).rejects.toMatchObject({ code: '26000' });
      // And the names are free again.
      await c.query('PREPARE p AS SELECT 2');
      expect((await c.query('EXECUTE p')).rows).toEqual([{ '?column?': 2 }]);
      // The look-alikes stay refused: settings pgwarden pins, to other values.
      await expect(c.query('SET standard_conforming_strings = off')).rejects.toMatchObject({ code: '42501' });
      await expect(c.query("SET client_encoding = 'SJIS'")).rejects.toMatchObject({ code: '42501' });
      await c.query("SET NAMES 'UTF8'");
      // Laravel's connect, and pgJDBC's setSchema: the pinned search path, so nothing drifts.
      await c.query('set search_path to "public"');
      expect(await show('search_path')).toBe('public');
      expect((await c.query('SELECT count(*)::int AS n FROM products')).rows).toEqual([{ n: 3 }]);
      await expect(c.query('SET search_path TO public, pg_temp')).rejects.toMatchObject({ code: '42501' });
    } finally {
      await c.end();
    }
  });

  it('statement_timeout may be shortened, at connect or by SET, never lengthened nor switched off (red team, round 50)', async () => {
    // node-postgres's statement_timeout option puts it in the startup packet.
    const c = new pg.Client({
      connectionString: await proxy.url({ tenant: 'acme' }),
      statement_timeout: 5000,
    });
    await c.connect();
    const show = async (): Promise<string> =>
      (await c.query<{ statement_timeout: string }>('SHOW statement_timeout')).rows[0]?.statement_timeout ??
      '';
    try {
      expect(await show()).toBe('5s');
      await c.query("SET statement_timeout = '2s'");
      expect(await show()).toBe('2s');
      await c.query('BEGIN; SET LOCAL statement_timeout = 500; COMMIT');
      for (const longer of ["'1h'", '0', "'31s'", "'-1'", "'5 s x'"])
        await expect(c.query(`SET statement_timeout = ${longer}`), longer).rejects.toMatchObject({
          code: '42501',
        });
      // RESET goes back to the session's start: the client's own shorter value.
      await c.query('RESET statement_timeout');
      expect(await show()).toBe('5s');
    } finally {
      await c.end();
    }
    const longer = new pg.Client({
      connectionString: await proxy.url({ tenant: 'acme' }),
      statement_timeout: 60_000,
    });
    await expect(longer.connect()).rejects.toMatchObject({ code: '28000' });
    await longer.end().catch(() => {});
  });

  it('a Bind of the unnamed portal the server refuses leaves no portal behind, not the one it replaced (red team, round 51)', async () => {
    const c = await RawClient.connect(proxy.port);
    const round = async (...msgs: Buffer[]): Promise<RawMessage[]> => {
      c.send(Buffer.concat([...msgs, serialize.sync()]));
      return c.untilReady();
    };
    try {
      await c.login('support-bot', db.name, await proxy.token());
      await simpleQuery(c, 'BEGIN');
      await round(
        serialize.parse({ name: 's_ok', text: 'SELECT id FROM products' }),
        serialize.parse({ name: 's_int', text: 'SELECT $1::int AS n' }),
      );
      expect(codes(await round(serialize.bind({ statement: 's_ok' })))).toBe('2Z');
      // The server makes the new portal before it reads the value, then fails on it.
      const failed = await round(serialize.bind({ statement: 's_int', values: ['not-a-number'] }));
      expect(errorOf(failed[0])).toMatchObject({ code: '22P02' });
      // An Execute of the unnamed portal would have been recorded as running s_ok, which the
      // server no longer holds (it answered with EmptyQueryResponse); pgwarden refuses it.
      const executed = await round(serialize.execute({}));
      expect(errorOf(executed[0])).toMatchObject({ code: '34000' });
      expect(proxy.sink.outcomes.filter((o) => o.command === 'EMPTY')).toEqual([]);
      await simpleQuery(c, 'ROLLBACK');
      // The look-alike: a Bind that succeeds after it is executed as ever.
      expect(codes(await round(serialize.bind({ statement: 's_ok' }), serialize.execute({})))).toMatch(
        /^2D+CZ$/,
      );
    } finally {
      c.close();
    }
  });

  it('ROLLBACK TO SAVEPOINT forgets no cursor: those declared before it stay counted (red team, round 51)', async () => {
    const small = await startTestProxy(db, { judge, config: { limits: { maxNamesPerSession: 3 } } });
    const c = await RawClient.connect(small.port);
    const query = (sql: string): Promise<RawMessage[]> => simpleQuery(c, sql);
    try {
      await c.login('support-bot', db.name, await small.token());
      const declare = (name: string): string =>
        `DECLARE ${name} CURSOR WITH HOLD FOR SELECT id FROM products`;
      // The attack: its answer is ROLLBACK's, and the two cursors before the savepoint were
      // forgotten while the server kept them, held them at COMMIT, and took more past the limit.
      expect(
        codes(await query(`BEGIN; ${declare('h1')}; ${declare('h2')}; SAVEPOINT s; ROLLBACK TO s`)),
      ).toBe('CCCCCZ');
      expect(codes(await query(declare('h3')))).toBe('CZ');
      expect(errorOf((await query(declare('h4')))[0])).toMatchObject({ code: '53400' });
      // The refusal failed the transaction, as the server's own would: its ROLLBACK ends it, and
      // every cursor it declared with it (the look-alike: those names are free again).
      expect(codes(await query('ROLLBACK'))).toBe('CZ');
      expect(codes(await query(`BEGIN; ${declare('k1')}; ${declare('k2')}; ${declare('k3')}; COMMIT`))).toBe(
        'CCCCCZ',
      );
      expect(codes(await query('FETCH 1 FROM k1'))).toBe('TDCZ');
    } finally {
      c.close();
      await small.close();
    }
  });

  it('a PREPARE last in a Query whose commit fails is counted against the limit, never run (red team, round 48)', async () => {
    // The server keeps the PREPARE (no rollback undoes one) but reports the commit's error as the
    // PREPARE's: uncounted, such names took the server's memory without bound.
    const small = await startTestProxy(db, { judge, config: { limits: { maxNamesPerSession: 4 } } });
    const c = await RawClient.connect(small.port);
    const query = (sql: string): Promise<RawMessage[]> => simpleQuery(c, sql);
    try {
      await c.login('support-bot', db.name, await small.token());
      // One name each: the PREPARE the server may hold (the cursor leaves with the failed commit).
      for (let i = 0; i < 3; i++) {
        const answer = await query(
          `DECLARE c${i} CURSOR WITH HOLD FOR SELECT 1 / (random() * 0)::int FROM products; PREPARE p${i} AS SELECT 1`,
        );
        expect(errorOf(answer.find((m) => m.code === 'E'))).toMatchObject({ code: '22012' });
      }
      expect(codes(await query('PREPARE q AS SELECT 1'))).toBe('CZ');
      expect(errorOf((await query('PREPARE r AS SELECT 1'))[0])).toMatchObject({ code: '53400' });
      // Still never run on pgwarden's word: it does not know what the server holds under the name.
      expect(errorOf((await query('EXECUTE p0'))[0])).toMatchObject({ code: '26000' });
      // The look-alike: a Query that fails before its last statement counts nothing.
      const fresh = await RawClient.connect(small.port);
      await fresh.login('support-bot', db.name, await small.token());
      for (let i = 0; i < 3; i++) {
        fresh.send(serialize.query(`SELECT 1 / 0 FROM products; PREPARE r${i} AS SELECT 1`));
        expect(errorOf((await fresh.untilReady())[0])).toMatchObject({ code: '22012' });
      }
      fresh.send(serialize.query('PREPARE q AS SELECT 1'));
      expect(codes(await fresh.untilReady())).toBe('CZ');
      fresh.close();
    } finally {
      c.close();
      await small.close();
    }
  });

  it('a session holds at most limits.maxNamesPerSession statements, portals and cursors; closed ones make room', async () => {
    const small = await startTestProxy(db, { judge, config: { limits: { maxNamesPerSession: 3 } } });
    const c = await RawClient.connect(small.port);
    try {
      await c.login('support-bot', db.name, await small.token());
      const parse = (name: string): Buffer => serialize.parse({ name, text: 'SELECT id FROM products' });
      // The attack: one name more than the limit, by Parse, by PREPARE and by a named portal.
      const [three, fourth, prepare] = await pipeline(
        c,
        3,
        Buffer.concat([parse('s1'), parse('s2'), serialize.query('PREPARE s3 AS SELECT 1')]),
        Buffer.concat([parse('s4'), serialize.sync()]),
        serialize.query('PREPARE s5 AS SELECT 1'),
      );
      expect(codes(three)).toBe('11CZ');
      const limited = { severity: 'ERROR', code: '53400', message: expect.stringContaining('at most 3') };
      expect(errorOf(fourth![0])).toMatchObject(limited);
      expect(errorOf(prepare![0])).toMatchObject(limited);
      const [portal] = await pipeline(
        c,
        1,
        Buffer.concat([serialize.bind({ statement: 's1', portal: 'p1' }), serialize.sync()]),
      );
      expect(errorOf(portal![0])).toMatchObject(limited);
      // The look-alikes: the unnamed statement and portal take no slot, and closing names makes
      // room, however many names the session has used before.
      const [unnamed] = await pipeline(
        c,
        1,
        Buffer.concat([
          serialize.parse({ text: 'SELECT 1' }),
          serialize.bind({}),
          serialize.execute({}),
          serialize.sync(),
        ]),
      );
      expect(codes(unnamed)).toBe('12DCZ');
      const churn: Buffer[] = [serialize.close({ type: 'S', name: 's1' })];
      for (let i = 0; i < 200; i++) churn.push(parse(`t${i}`), serialize.close({ type: 'S', name: `t${i}` }));
      churn.push(parse('s4'), serialize.sync());
      const [room] = await pipeline(c, 1, Buffer.concat(churn));
      expect(room?.filter((m) => m.code === 'E').map((m) => errorOf(m)?.message)).toEqual([]);
      expect(room?.at(-2)?.code).toBe('1');
    } finally {
      c.close();
      await small.close();
    }
  });

  it('a query with more statements than limits.maxStatementsPerQuery is refused before it is judged', async () => {
    const small = await startTestProxy(db, { judge, config: { limits: { maxStatementsPerQuery: 3 } } });
    const c = await RawClient.connect(small.port);
    await c.login('support-bot', db.name, await small.token());
    const [refused, allowed] = await pipeline(
      c,
      2,
      serialize.query('SELECT 1; SELECT 2; SELECT 3; SELECT 4'),
      serialize.query('SELECT 1; SELECT 2; SELECT 3'),
    );
    expect(errorOf(refused![0])).toMatchObject({
      severity: 'ERROR',
      code: '54000',
      message: expect.stringContaining('at most 3'),
    });
    expect(codes(allowed)).toBe('TDCTDCTDCZ');
    c.close();
    await small.close();
  });
});

describe('bind values in decision records', () => {
  it('are recorded with audit.redactParameters off, and never read or recorded with it on', async () => {
    // Found by the red team (round 13): the option was documented but no value was ever recorded.
    const open = await startTestProxy(db, { judge, config: { audit: { redactParameters: false } } });
    const c = new pg.Client({
      connectionString: await open.url({ tenant: 'acme', human: 'alice@acme.test' }),
    });
    await c.connect();
    try {
      await c.query('SELECT id FROM orders WHERE id = $1 AND status <> $2', [3, 'gone']);
      const rec = open.sink.records.find(
        (r) => r.sql === 'SELECT id FROM orders WHERE id = $1 AND status <> $2',
      );
      expect(rec?.parameters).toEqual(['3', 'gone']);
    } finally {
      await c.end();
      await open.close();
    }
    // The default: redacted, so the values never reach a record.
    const d = await client('acme');
    try {
      await d.query('SELECT id FROM orders WHERE id = $1 AND status <> $2', [4, 'secret-value']);
      const recs = proxy.sink.records.filter(
        (r) => r.sql === 'SELECT id FROM orders WHERE id = $1 AND status <> $2',
      );
      expect(recs.length).toBeGreaterThan(0);
      for (const r of recs) expect(r.parameters ?? null).toBeNull();
      expect(JSON.stringify(proxy.sink.records)).not.toContain('secret-value');
    } finally {
      await d.end();
    }
  });
});
