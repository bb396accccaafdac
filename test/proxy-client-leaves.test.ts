import { readFileSync } from 'node:fs';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCatalog } from '../src/policy/catalog.js';
import { createPolicyJudge } from '../src/policy/engine.js';
import { loadRules } from '../src/policy/rules-load.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';
import { RawClient } from './support/raw-client.js';

/**
 * A client that leaves with statements unanswered: what it sent before a Terminate runs as it
 * would against the server itself, and every record says what became of its statement.
 */

/** Takes the server about half a second; allowed by the demo rules. */
const SLOW = 'SELECT count(*) FROM generate_series(1, 6000000)';

let db: TestDatabase;
let proxy: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase('leave');
  await db.sql(readFileSync('src/demo/seed.sql', 'utf8'));
  const judge = createPolicyJudge(await loadRules(['rules']), await loadCatalog(db.url, 'public'), {
    searchPath: 'public',
  });
  proxy = await startTestProxy(db, { judge, config: { limits: { maxConnections: 1 } } });
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

async function login(): Promise<RawClient> {
  // The limit is one session: the last test's must have ended.
  await until(() => (proxy.proxy.sessionCount() === 0 ? true : undefined), 'the last session to end');
  const c = await RawClient.connect(proxy.port);
  await c.login('support-bot', db.name, await proxy.token());
  return c;
}

async function until<T>(f: () => T | undefined, what: string, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function outcomeOf(sql: string): { command: string | null; sqlstate: string | null } | undefined {
  const record = proxy.sink.records.find((r) => r.sql === sql);
  const o = record && proxy.sink.outcomes.find((x) => x.recordId === record.id);
  return o && { command: o.command, sqlstate: o.sqlstate };
}

describe('a client that leaves before its answers', () => {
  it('has what it sent before Terminate run to the end, recorded as it ran', async () => {
    const sql = `${SLOW}; INSERT INTO orders (org_id, total) VALUES ('acme', 41.5)`;
    const c = await login();
    // One write: the server has both the Query and the Terminate before the first statement ends.
    c.send(Buffer.concat([serialize.query(sql), serialize.end()]));
    expect(await until(() => outcomeOf(sql), 'the outcome')).toEqual({
      command: 'INSERT 0 1',
      sqlstate: null,
    });
    expect(await db.sql(`SELECT org_id FROM orders WHERE total = 41.5`)).toEqual([{ org_id: 'acme' }]);
    const session = proxy.sink.records.find((r) => r.sql === sql)!.sessionId;
    const end = await until(
      () => proxy.sink.records.find((r) => r.kind === 'session_end' && r.sessionId === session),
      'the session_end record',
    );
    expect(end.detail).toBe('client sent Terminate');
  });

  it('has a statement it left without Terminate cancelled, and records the cancel', async () => {
    const c = await login();
    const sql = `${SLOW} AS vanished`;
    c.send(serialize.query(sql));
    await new Promise((r) => setTimeout(r, 100));
    c.socket.destroy();
    expect(await until(() => outcomeOf(sql), 'the outcome')).toEqual({ command: null, sqlstate: '57014' });
  });

  it('keeps its place in limits.maxConnections until the server has answered', async () => {
    const c = await login();
    c.send(Buffer.concat([serialize.query(`${SLOW} AS held`), serialize.end()]));
    await until(() => (c.closed ? true : undefined), 'the client to be closed');
    // Its server connection is still busy: a second session would exceed the limit.
    await until(() => (proxy.proxy.sessionCount() === 1 ? true : undefined), 'the session');
    const other = new pg.Client({ connectionString: await proxy.url() });
    await expect(other.connect()).rejects.toMatchObject({ code: '53300' });
    await until(() => outcomeOf(`${SLOW} AS held`), 'the outcome');
    await until(() => (proxy.proxy.sessionCount() === 0 ? true : undefined), 'the session to end');
    const again = new pg.Client({ connectionString: await proxy.url() });
    await again.connect();
    expect((await again.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    await again.end();
  });

  it('records what became of a pipeline cut off by its token expiring: run, cancelled, never abandoned', async () => {
    // A token whose expiry (whole seconds) is 1 to 2 s away, and a pipeline whose second statement
    // runs far longer than that.
    const c = await RawClient.connect(proxy.port);
    await until(() => (proxy.proxy.sessionCount() === 0 ? true : undefined), 'the last session to end');
    await c.login('support-bot', db.name, await proxy.token({ ttlSeconds: 2 }));
    const texts = [
      'SELECT 1 AS first',
      'SELECT count(*) FROM generate_series(1, 200000000) AS long',
      ...Array.from({ length: 3 }, (_, i) => `SELECT ${i} AS after`),
    ];
    c.send(Buffer.concat(texts.map((t) => serialize.query(t))));
    const outcomes = await until(() => {
      const all = texts.map(outcomeOf);
      return all.every((o) => o !== undefined) ? all : undefined;
    }, 'every outcome');
    const session = proxy.sink.records.find((r) => r.sql === texts[0])!.sessionId;
    const end = await until(
      () => proxy.sink.records.find((r) => r.kind === 'session_end' && r.sessionId === session),
      'the session_end record',
    );
    expect(end.detail).toBe('PGW_TOKEN_EXPIRED');
    const commands = outcomes.map((o) => o!.command ?? o!.sqlstate);
    expect(commands).not.toContain('ABANDONED');
    // The first ran before the expiry; the one running then was cancelled; those the server had
    // already received ran after it.
    expect(commands).toEqual(['SELECT 1', '57014', 'SELECT 1', 'SELECT 1', 'SELECT 1']);
  });

  it('still ends at once when nothing is unanswered', async () => {
    const c = await login();
    c.send(serialize.query('SELECT 1'));
    await c.untilReady();
    c.send(serialize.end());
    await until(() => (proxy.proxy.sessionCount() === 0 ? true : undefined), 'the session to end', 2000);
    expect(c.closed || (await c.read(2000)) === undefined).toBe(true);
  });
});
