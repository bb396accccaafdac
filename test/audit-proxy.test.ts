import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import postgres from 'postgres';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { auditConfigSchema } from '../src/audit/config.js';
import { startDecisionLog, type DecisionLog } from '../src/audit/decision-log.js';
import { AuditReader, type DecisionView } from '../src/audit/store-reader.js';
import { verifyAll } from '../src/audit/verify.js';
import { loadCatalog } from '../src/policy/catalog.js';
import { createPolicyJudge } from '../src/policy/engine.js';
import { loadRules } from '../src/policy/rules-load.js';
import { loadParser } from '../src/sql/parse.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';

/**
 * The decision log behind the real proxy, driven by a real client: every statement's record
 * arrives in the store with the identity from the token, the verdict, the rewrite and the rows.
 */
const logger = pino({ level: 'silent' });
let app: TestDatabase;
let storeName: string;
let spoolRoot: string;
let log: DecisionLog;
let proxy: TestProxy;
let reader: AuditReader;

beforeAll(async () => {
  await loadParser();
  app = await createTestDatabase('audit_proxy');
  await app.sql(readFileSync('src/demo/seed.sql', 'utf8'));
  spoolRoot = mkdtempSync(join(tmpdir(), 'pgw-spool-'));
  // The default store: a database created on the upstream server on first start.
  storeName = `pgwarden_audit_${Math.random().toString(16).slice(2, 8)}`;
  const cfg = auditConfigSchema.parse({
    ndjson: 'off',
    store: { database: storeName, pollIntervalMs: 10 },
    spool: { dir: spoolRoot },
  });
  log = await startDecisionLog(cfg, { instanceId: 'proxy-it', upstreamUrl: app.url, logger });
  const judge = createPolicyJudge(await loadRules(['rules']), await loadCatalog(app.url, 'public'), {
    searchPath: 'public',
  });
  proxy = await startTestProxy(app, { judge, sink: log });
  const u = new URL(app.url);
  u.pathname = `/${storeName}`;
  reader = new AuditReader(u.toString());
});

afterAll(async () => {
  await proxy?.close();
  await log?.close();
  await reader?.close();
  await app.sql(`DROP DATABASE IF EXISTS ${storeName} WITH (FORCE)`);
  await app.drop();
  rmSync(spoolRoot, { recursive: true, force: true });
});

describe('decision records through the proxy', () => {
  it('records allow, rewrite and deny from node-postgres with identity, rewrite, rows and errors', async () => {
    const client = new pg.Client({
      connectionString: await proxy.url({ human: 'dana@acme.test', agent: 'support-bot', tenant: 'acme' }),
      application_name: 'audit-it',
    });
    await client.connect();
    const products = await client.query('SELECT id, name FROM products ORDER BY id');
    const orders = await client.query('SELECT id, total FROM orders WHERE total > $1 ORDER BY id', [0]);
    await expect(client.query('SELECT * FROM internal_notes')).rejects.toMatchObject({ code: '42501' });
    await expect(client.query(`SELECT * FROM orders WHERE org_id = 'globex'`)).rejects.toMatchObject({
      code: '42501',
    });
    await client.end();
    expect(await log.flushToStore()).toBe(true);

    const page = await reader.search({ human: 'dana@acme.test' }, { limit: 100 });
    const sessionId = page.items[0]?.sessionId as string;
    const replay = await reader.wholeSession(sessionId);
    const statements = replay.filter((d) => d.kind === 'statement');
    const bySql = (s: string): DecisionView =>
      statements.find((d) => String(d.sql).startsWith(s)) as DecisionView;

    expect(replay[0]).toMatchObject({ kind: 'session_start', human: 'dana@acme.test', tenant: 'acme' });
    expect(replay.map((d) => d.seq)).toEqual([...replay.keys()].map((i) => (replay[0]!.seq as number) + i));

    const allow = bySql('SELECT id, name FROM products');
    expect(allow).toMatchObject({ verdict: 'allow', agent: 'support-bot', applicationName: 'audit-it' });
    expect(allow.outcome).toMatchObject({
      rows: products.rowCount,
      command: `SELECT ${products.rowCount}`,
      sqlstate: null,
    });

    const rewrite = bySql('SELECT id, total FROM orders');
    expect(rewrite.verdict).toBe('rewrite');
    expect(rewrite.rewrittenSql).toMatch(/org_id OPERATOR\(pg_catalog\.=\)/);
    expect(rewrite.protocol).toMatchObject({ mode: 'extended' });
    expect(rewrite.parameters).toBeNull(); // redacted by default
    expect(rewrite.outcome).toMatchObject({ rows: orders.rowCount });

    const deny = bySql('SELECT * FROM internal_notes');
    expect(deny).toMatchObject({ verdict: 'deny', error: { sqlstate: '42501' } });
    expect((deny.ruleIds as string[]).length + (deny.reasons as string[]).length).toBeGreaterThan(0);

    const probe = bySql(`SELECT * FROM orders WHERE org_id = 'globex'`);
    expect(probe.verdict).toBe('deny');
    expect(probe.flags).toContain('cross_tenant_attempt');

    expect(replay.at(-1)?.kind).toBe('session_end');
    const [chain] = await verifyAll(reader.pool, undefined, 'proxy-it');
    expect(chain?.ok).toBe(true);
  });

  it('records what psql sends over the simple protocol, one record per judged query message', async () => {
    const url = await proxy.url({ human: 'erin@acme.test', tenant: 'acme' });
    const { stdout } = await promisify(execFile)(
      'psql',
      [
        url,
        '-X',
        '-A',
        '-t',
        '-c',
        'SELECT count(*) FROM orders',
        '-c',
        'SELECT name FROM products ORDER BY 1 LIMIT 1',
      ],
      { env: { ...process.env, PGSSLMODE: 'disable' } },
    );
    expect(stdout.trim().split('\n')).toHaveLength(2);
    expect(await log.flushToStore()).toBe(true);
    const items = (await reader.search({ human: 'erin@acme.test', kind: 'statement' }, { limit: 10 })).items;
    expect(items.map((d) => [d.sql, d.verdict, (d.protocol as { mode: string }).mode]).sort()).toEqual([
      ['SELECT count(*) FROM orders', 'rewrite', 'simple'],
      ['SELECT name FROM products ORDER BY 1 LIMIT 1', 'allow', 'simple'],
    ]);
    expect(items.every((d) => d.outcome !== null)).toBe(true);
  });

  it('under concurrent pipelined sessions, every answer keeps its order and every statement has one record', async () => {
    // Ten connections, each pipelining twenty statements: many records land in one spool write,
    // and each session's held bytes must still reach the server in the order they were sent.
    const sessions = 10;
    const perSession = 20;
    const clients = await Promise.all(
      Array.from({ length: sessions }, async (_, s) => {
        const url = await proxy.url({ human: `load${s}@acme.test`, tenant: 'acme' });
        return postgres(url, { max: 1, ssl: false, fetch_types: false, onnotice: () => {} });
      }),
    );
    try {
      const results = await Promise.all(
        clients.map((sql, s) =>
          Promise.all(
            Array.from(
              { length: perSession },
              (_, i) => sql`SELECT ${s * 1000 + i}::int AS n, count(*)::int AS c FROM orders`,
            ),
          ),
        ),
      );
      results.forEach((rows, s) =>
        expect(rows.map((r) => r[0]?.n)).toEqual(Array.from({ length: perSession }, (_, i) => s * 1000 + i)),
      );
    } finally {
      await Promise.all(clients.map((sql) => sql.end()));
    }
    expect(await log.flushToStore()).toBe(true);
    for (let s = 0; s < sessions; s++) {
      const items = (await reader.search({ human: `load${s}@acme.test`, kind: 'statement' }, { limit: 100 }))
        .items;
      // postgres.js prepares the statement once (a named statement, recorded at Parse) and then
      // binds and executes it: one record per execution, each with its outcome (one row).
      const executions = items.filter((d) => d.outcome?.command === 'SELECT 1');
      expect(executions).toHaveLength(perSession);
      expect(items.every((d) => d.verdict === 'rewrite')).toBe(true);
    }
    const [chain] = await verifyAll(reader.pool, undefined, 'proxy-it');
    expect(chain?.ok).toBe(true);
  });

  it('keeps bind values out of the recorded server error when parameters are redacted', async () => {
    const client = new pg.Client({
      connectionString: await proxy.url({ human: 'redact@acme.test', tenant: 'acme' }),
    });
    await client.connect();
    const card = '-4111-1111-1111-1111 cvv 123';
    // Extended protocol: the value is a bind parameter, and the server quotes it in its message.
    await expect(
      client.query('SELECT (id::text || $1)::int AS x FROM orders LIMIT 1', [card]),
    ).rejects.toMatchObject({ code: '22P02' });
    // Look-alike: the same value as a literal over the simple protocol is part of the SQL text,
    // which is recorded as sent, so the message is kept as the server wrote it.
    await expect(
      client.query(`SELECT (id::text || '${card}')::int AS y FROM orders LIMIT 1`),
    ).rejects.toMatchObject({ code: '22P02' });
    await client.end();
    expect(await log.flushToStore()).toBe(true);
    const items = (await reader.search({ human: 'redact@acme.test', kind: 'statement' }, { limit: 10 }))
      .items;
    const bound = items.find((d) => String(d.sql).includes('$1'));
    expect(bound?.outcome).toMatchObject({ sqlstate: '22P02' });
    const message = String(bound?.outcome?.errorMessage);
    expect(message).not.toContain('4111');
    expect(message).toBe('invalid input syntax for type integer: [redacted]');
    const literal = items.find((d) => String(d.sql).includes('AS y'));
    expect(literal?.outcome?.errorMessage).toContain('4111-1111-1111-1111 cvv 123');
  });

  it('keeps bind values the server prints unquoted out of the recorded error too (red team, round 25)', async () => {
    const client = new pg.Client({
      connectionString: await proxy.url({ human: 'redact-bare@acme.test', tenant: 'acme' }),
    });
    await client.connect();
    // A scalar subquery keeps the call out of Bind's planning (which folds chr($1::int) with the
    // value and fails before the execution is recorded): the error comes from the execution.
    await expect(client.query('SELECT chr((SELECT $1::int)) AS c', ['123456789'])).rejects.toMatchObject({
      code: '54000',
    });
    // A Buffer goes binary (as every parameter of Npgsql and asyncpg), and a number with a sign and
    // leading zeros is printed without them (red team, round 26).
    await expect(
      client.query('SELECT chr((SELECT $1::text)::int) AS c2', [Buffer.from('987654321')]),
    ).rejects.toMatchObject({ code: '54000' });
    await expect(client.query('SELECT chr((SELECT $1::int)) AS c3', ['+0123456782'])).rejects.toMatchObject({
      code: '54000',
    });
    // Look-alike: the same number as a literal is part of the SQL text, recorded as sent.
    await expect(client.query('SELECT chr(123456789) AS d')).rejects.toMatchObject({ code: '54000' });
    await client.end();
    expect(await log.flushToStore()).toBe(true);
    const items = (await reader.search({ human: 'redact-bare@acme.test', kind: 'statement' }, { limit: 10 }))
      .items;
    const bound = items.filter((d) => String(d.sql).includes('$1'));
    expect(bound.map((d) => d.outcome?.errorMessage)).toEqual([
      'requested character too large for encoding: [redacted]',
      'requested character too large for encoding: [redacted]',
      'requested character too large for encoding: [redacted]',
    ]);
    const literal = items.find((d) => String(d.sql).includes('AS d'));
    expect(literal?.outcome?.errorMessage).toContain('123456789');
  });

  it('keeps at most 4,096 characters of a server error in the record, however long the agent made it', async () => {
    const client = new pg.Client({
      connectionString: await proxy.url({ human: 'longerr@acme.test', tenant: 'acme' }),
    });
    await client.connect();
    // The server quotes the whole input it could not read: a 1 MB error message.
    await expect(client.query(`SELECT repeat('x', 1000000)::int AS z`)).rejects.toMatchObject({
      code: '22P02',
    });
    // Look-alike: a short error is kept whole.
    await expect(client.query(`SELECT 'short'::int AS w`)).rejects.toMatchObject({ code: '22P02' });
    await client.end();
    // node-postgres rejects at the ErrorResponse; pgwarden records the outcome at the
    // ReadyForQuery after it, which may come a moment later.
    const items = await vi.waitFor(
      async () => {
        expect(await log.flushToStore()).toBe(true);
        const found = (await reader.search({ human: 'longerr@acme.test', kind: 'statement' }, { limit: 10 }))
          .items;
        expect(found.filter((d) => d.outcome?.errorMessage).length).toBe(2);
        return found;
      },
      { timeout: 10_000, interval: 100 },
    );
    const long = String(items.find((d) => String(d.sql).includes('AS z'))?.outcome?.errorMessage);
    expect(long.length).toBeLessThan(4200);
    expect(long).toMatch(/^invalid input syntax for type integer: "x+\.\.\. \(\d+ characters\)$/);
    const short = items.find((d) => String(d.sql).includes('AS w'))?.outcome?.errorMessage;
    expect(short).toBe('invalid input syntax for type integer: "short"');
  });

  it('records why an execution was skipped after the server refused its Bind', async () => {
    const client = new pg.Client({
      connectionString: await proxy.url({ human: 'skip@acme.test', tenant: 'acme' }),
    });
    await client.connect();
    await expect(
      client.query('SELECT id FROM orders WHERE id = $1::int', ['4111 1111 1111 1111']),
    ).rejects.toMatchObject({ code: '22P02' });
    // Look-alike: a good value runs and completes normally.
    const ok = await client.query('SELECT id FROM orders WHERE id = $1::int', ['1']);
    await client.end();
    expect(await log.flushToStore()).toBe(true);
    const items = (await reader.search({ human: 'skip@acme.test', kind: 'statement' }, { limit: 10 })).items;
    const outcomes = items.map((d) => d.outcome);
    const skipped = outcomes.find((o) => o?.command === 'SKIPPED');
    expect(skipped).toMatchObject({
      sqlstate: '22P02',
      errorMessage: 'invalid input syntax for type integer: [redacted]',
    });
    expect(outcomes.find((o) => o?.command !== 'SKIPPED')).toMatchObject({
      command: `SELECT ${ok.rowCount}`,
      sqlstate: null,
      errorMessage: null,
    });
  });
});
