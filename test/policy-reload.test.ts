import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCatalog } from '../src/policy/catalog.js';
import { createReloadableJudge, type ReloadableJudge } from '../src/policy/reloadable.js';
import { loadParser } from '../src/sql/parse.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';
import { RawClient } from './support/raw-client.js';

/**
 * Rules reloaded while sessions hold prepared statements and cursors: the server runs the SQL
 * their PREPARE, Parse or DECLARE forwarded, so what the new rules refuse must not run through
 * them (the red team read a column just withdrawn through all three).
 */
let db: TestDatabase;
let rulesDir: string;
let policy: ReloadableJudge;
let proxy: TestProxy;

const rulesFile = (): string => join(rulesDir, 'demo.yaml');

beforeAll(async () => {
  await loadParser();
  db = await createTestDatabase('reload');
  await db.sql(readFileSync('src/demo/seed.sql', 'utf8'));
  rulesDir = mkdtempSync(join(tmpdir(), 'pgwarden-rules-'));
  cpSync('rules', rulesDir, { recursive: true });
  policy = await createReloadableJudge({
    rulesPaths: [rulesDir],
    loadCatalog: () => loadCatalog(db.url, 'public'),
    searchPath: 'public',
    offThread: true,
  });
  proxy = await startTestProxy(db, { judge: policy.judge });
});
afterAll(async () => {
  await proxy?.close();
  await policy?.close();
  await db?.drop();
  if (rulesDir) rmSync(rulesDir, { recursive: true, force: true });
});

async function reloadWith(edit: (yaml: string) => string): Promise<void> {
  writeFileSync(rulesFile(), edit(readFileSync(rulesFile(), 'utf8')));
  expect(await policy.reload()).toEqual({ ok: true });
}

describe('a reload that withdraws a column', () => {
  it('refuses the statements, PREPAREs and cursors made before it that read the column; the rest run', async () => {
    const c = new pg.Client({
      connectionString: await proxy.url({ tenant: 'acme', human: 'alice@acme.test' }),
    });
    await c.connect();
    const original = readFileSync(rulesFile(), 'utf8');
    try {
      const readsName = { name: 's1', text: 'SELECT name FROM customers WHERE id = $1', values: [1] };
      const readsId = { name: 's2', text: 'SELECT id FROM customers WHERE id = $1', values: [1] };
      const readsOrders = { name: 's3', text: 'SELECT total FROM orders WHERE id = $1', values: [1] };
      expect((await c.query(readsName)).rows).toEqual([{ name: 'acme customer 1' }]);
      expect((await c.query(readsId)).rows).toEqual([{ id: '1' }]);
      expect((await c.query(readsOrders)).rows).toHaveLength(1);
      await c.query('PREPARE p AS SELECT name FROM customers WHERE id = 2');
      await c.query('BEGIN');
      await c.query('DECLARE cur CURSOR FOR SELECT name FROM customers ORDER BY id');

      await reloadWith((yaml) => yaml.replace('deny: [ssn]', 'deny: [ssn, name]'));

      // The attack: the same session uses what it prepared under the old rules.
      await expect(c.query('FETCH 1 FROM cur')).rejects.toMatchObject({
        code: '0A000',
        message: expect.stringContaining('CLOSE cur and DECLARE it again'),
      });
      await c.query('ROLLBACK');
      await expect(c.query('EXECUTE p')).rejects.toMatchObject({
        code: '0A000',
        message: expect.stringContaining('DEALLOCATE p and PREPARE it again'),
      });
      // node-postgres sends only Bind and Execute for a statement it has prepared.
      await expect(c.query(readsName)).rejects.toMatchObject({
        code: '42501',
        message: expect.stringContaining('name'),
      });
      // The look-alikes: what the new rules judge alike runs as before; a statement they rewrite
      // otherwise (customers is read through the columns agents may see) is prepared again.
      expect((await c.query(readsOrders)).rows).toHaveLength(1);
      await expect(c.query(readsId)).rejects.toMatchObject({ code: '0A000' });
      expect((await c.query({ ...readsId, name: 's2b' })).rows).toEqual([{ id: '1' }]);
      await c.query('DEALLOCATE p');
      await c.query('PREPARE p AS SELECT id FROM customers WHERE id = 2');
      expect((await c.query('EXECUTE p')).rows).toEqual([{ id: '2' }]);
    } finally {
      writeFileSync(rulesFile(), original);
      await policy.reload();
      await c.end();
    }
  });

  it('an EXECUTE waiting for the judge thread while the rules change is judged under the new ones', async () => {
    // Found by the review: the thread judged it with the new rules but the session state sent
    // before the reload (its rules version included), so the old PREPARE passed, and the session
    // took the answer as the new rules' word.
    const c = new pg.Client({
      connectionString: await proxy.url({ tenant: 'acme', human: 'alice@acme.test' }),
    });
    await c.connect();
    const busy = await RawClient.connect(proxy.port);
    const original = readFileSync(rulesFile(), 'utf8');
    try {
      await busy.login('support-bot', db.name, await proxy.token({ tenant: 'acme', human: 'bob@acme.test' }));
      await c.query('PREPARE p AS SELECT name FROM customers WHERE id = 2');
      // Keeps the judge thread busy for a second or more: 7,000 rows into a parent-scoped table
      // (under limits.maxQueryBytes, 128 KB). It is left to the thread when the test ends.
      const rows = Array.from({ length: 7000 }, () => `(999999,'R',1)`).join(',');
      busy.send(serialize.query(`INSERT INTO order_items (order_id, sku, qty) VALUES ${rows}`));
      await new Promise((r) => setTimeout(r, 100));
      const executed = c.query('EXECUTE p');
      await reloadWith((yaml) => yaml.replace('deny: [ssn]', 'deny: [ssn, name]'));
      await expect(executed).rejects.toMatchObject({ code: '0A000' });
    } finally {
      busy.close();
      writeFileSync(rulesFile(), original);
      await policy.reload();
      await c.end();
    }
  });

  it('keeps the PREPAREs and cursors the new rules forward alike, and refuses one they rewrite otherwise', async () => {
    const c = new pg.Client({
      connectionString: await proxy.url({ tenant: 'acme', human: 'alice@acme.test' }),
    });
    await c.connect();
    const original = readFileSync(rulesFile(), 'utf8');
    try {
      // Rewritten (orders is scoped to the tenant), in a message of several statements, and plain.
      await c.query(`SELECT 1; PREPARE totals AS SELECT id, total FROM orders WHERE total > $1 ORDER BY id`);
      await c.query(`PREPARE one AS SELECT 1 AS n`);
      await c.query(`PREPARE mail AS SELECT email FROM customers WHERE id = 1`);
      await c.query('BEGIN');
      await c.query('DECLARE cur CURSOR FOR SELECT id FROM orders ORDER BY id');
      const before = (await c.query('EXECUTE totals(0)')).rows;
      expect(before.length).toBeGreaterThan(0);

      // Withdraws a column none of them reads, and changes the mask one of them reads.
      await reloadWith((yaml) =>
        yaml
          .replace('deny: [ssn]', 'deny: [ssn, name]')
          .replace(`email: "left(email, 1) || '***@' || split_part(email, '@', 2)"`, `email: "'hidden'"`),
      );

      expect((await c.query('FETCH 1 FROM cur')).rows).toHaveLength(1);
      await c.query('COMMIT');
      expect((await c.query('EXECUTE totals(0)')).rows).toEqual(before);
      expect((await c.query('EXECUTE one')).rows).toEqual([{ n: 1 }]);
      // The attack: the server would print the old mask, which the rules no longer allow.
      await expect(c.query('EXECUTE mail')).rejects.toMatchObject({
        code: '0A000',
        message: expect.stringContaining('DEALLOCATE mail and PREPARE it again'),
      });
      await c.query('DEALLOCATE mail');
      await c.query(`PREPARE mail AS SELECT email FROM customers WHERE id = 1`);
      expect((await c.query('EXECUTE mail')).rows).toEqual([{ email: 'hidden' }]);
    } finally {
      writeFileSync(rulesFile(), original);
      await policy.reload();
      await c.end();
    }
  });

  it('judges a long PREPARE again on the judge thread when a short EXECUTE uses it (limits.judgeOffThreadBytes)', async () => {
    // Texts up to 1 KiB are judged on the event loop; the PREPAREs below are longer. A short
    // EXECUTE of one was refused after any reload: its PREPARE could not be judged again there.
    const short = await startTestProxy(db, {
      judge: policy.judge,
      config: { limits: { judgeOffThreadBytes: 1024 } },
    });
    const c = new pg.Client({
      connectionString: await short.url({ tenant: 'acme', human: 'alice@acme.test' }),
    });
    await c.connect();
    const original = readFileSync(rulesFile(), 'utf8');
    const padding = `'${'x'.repeat(2000)}' <> ''`;
    try {
      await c.query(
        `PREPARE totals AS SELECT id, total FROM orders WHERE total > $1 AND ${padding} ORDER BY id`,
      );
      await c.query(`PREPARE names AS SELECT name FROM customers WHERE id = 1 AND ${padding}`);
      const before = (await c.query('EXECUTE totals(0)')).rows;
      expect(before.length).toBeGreaterThan(0);
      await reloadWith((yaml) => yaml.replace('deny: [ssn]', 'deny: [ssn, name]'));
      // Judged alike: runs, by the simple and the extended protocol.
      expect((await c.query('EXECUTE totals(0)')).rows).toEqual(before);
      expect((await c.query({ name: 'exec-totals', text: 'EXECUTE totals(0)' })).rows).toEqual(before);
      // The attack it must not open: the column just withdrawn, through a long PREPARE.
      await expect(c.query('EXECUTE names')).rejects.toMatchObject({ code: '0A000' });
      await expect(c.query({ name: 'exec-names', text: 'EXECUTE names' })).rejects.toMatchObject({
        code: '0A000',
      });
    } finally {
      writeFileSync(rulesFile(), original);
      await policy.reload();
      await c.end();
      await short.close();
    }
  });

  it('a statement the new rules rewrite differently is refused with PGW_RULES_CHANGED, then prepared again', async () => {
    const c = new pg.Client({
      connectionString: await proxy.url({ tenant: 'acme', human: 'alice@acme.test' }),
    });
    await c.connect();
    const original = readFileSync(rulesFile(), 'utf8');
    try {
      const q = { name: 'mail', text: 'SELECT email FROM customers WHERE id = $1', values: [1] };
      expect((await c.query(q)).rows).toEqual([{ email: 'u***@acme.test' }]);
      // The mask changes: the SQL prepared on the server is no longer the one the rules want.
      await reloadWith((yaml) =>
        yaml.replace(`email: "left(email, 1) || '***@' || split_part(email, '@', 2)"`, `email: "'hidden'"`),
      );
      await expect(c.query(q)).rejects.toMatchObject({ code: '0A000' });
      const again = { name: 'mail2', text: q.text, values: [1] };
      expect((await c.query(again)).rows).toEqual([{ email: 'hidden' }]);
    } finally {
      writeFileSync(rulesFile(), original);
      await policy.reload();
      await c.end();
    }
  });
});
