import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecisionRecord, DecisionSink } from '../src/audit/record.js';
import { PgwardenError } from '../src/errors/registry.js';
import { loadCatalog } from '../src/policy/catalog.js';
import { createPolicyJudge } from '../src/policy/engine.js';
import { parseRulesText } from '../src/policy/rules-load.js';
import { loadParser } from '../src/sql/parse.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';
import { RawClient } from './support/raw-client.js';

/**
 * A decision log that queues records and makes them durable later (the durable log writes a
 * turn's records together): no statement may reach the server before its record is durable.
 * This sink lets the test decide when "later" is, and whether the write fails.
 */
function gatedSink(): DecisionSink & {
  records: DecisionRecord[];
  waiting: number;
  release(err?: PgwardenError): void;
} {
  const records: DecisionRecord[] = [];
  let waiters: ((err: PgwardenError | undefined) => void)[] = [];
  return {
    records,
    get waiting() {
      return waiters.length;
    },
    decide: (r) => void records.push(r),
    whenDurable: (done) => void waiters.push(done),
    release(err) {
      const w = waiters;
      waiters = [];
      for (const done of w) done(err);
    },
    complete: () => {},
    close: async () => {},
  };
}

let db: TestDatabase;
let px: TestProxy;
let sink: ReturnType<typeof gatedSink>;

const RULES = `
version: 1
tenant: { claim: tenant }
tables:
  public.hits: { scope: global, access: [select, insert] }
`;

beforeAll(async () => {
  await loadParser();
  db = await createTestDatabase('hold');
  await db.sql('CREATE TABLE hits (n int)');
  const judge = createPolicyJudge(parseRulesText('hold.yaml', RULES), await loadCatalog(db.url, 'public'), {
    searchPath: 'public',
  });
  sink = gatedSink();
  px = await startTestProxy(db, { judge, sink });
});
afterAll(async () => {
  await px?.close();
  await db?.drop();
});

const hits = async (): Promise<number> =>
  (await db.sql<{ n: number }>('SELECT count(*)::int AS n FROM hits'))[0]!.n;

const until = async (cond: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(cond()).toBe(true);
};

describe('a decision log that makes records durable after decide()', () => {
  it('holds the statement until its record is durable, then runs it (simple and extended)', async () => {
    const c = new pg.Client({ connectionString: await px.url() });
    await c.connect();
    try {
      const simple = c.query('INSERT INTO hits VALUES (1)');
      await until(() => sink.waiting > 0);
      // Give a statement that was wrongly forwarded every chance to land.
      await new Promise((r) => setTimeout(r, 100));
      expect(await hits()).toBe(0);
      sink.release();
      await simple;
      expect(await hits()).toBe(1);

      const extended = c.query('INSERT INTO hits VALUES ($1)', [2]);
      await until(() => sink.waiting > 0);
      await new Promise((r) => setTimeout(r, 100));
      expect(await hits()).toBe(1);
      sink.release();
      await extended;
      expect(await hits()).toBe(2);
    } finally {
      await c.end();
    }
  });

  it('a benign read waits the same way and returns its rows', async () => {
    const c = new pg.Client({ connectionString: await px.url() });
    await c.connect();
    try {
      const read = c.query('SELECT count(*)::int AS n FROM hits');
      await until(() => sink.waiting > 0);
      sink.release();
      expect((await read).rows).toEqual([{ n: 2 }]);
    } finally {
      await c.end();
    }
  });

  it('still runs what a client sent right before Terminate, once its record is durable', async () => {
    const raw = await RawClient.connect(px.port);
    await raw.login('support-bot', db.name, await px.token());
    const before = await hits();
    // Fire and forget: the statement, Terminate and the end of the connection in one packet.
    raw.send(Buffer.concat([serialize.query('INSERT INTO hits VALUES (4)'), serialize.end()]));
    raw.close();
    await until(() => sink.waiting > 0);
    await new Promise((r) => setTimeout(r, 50));
    expect(await hits()).toBe(before);
    sink.release();
    for (let i = 0; i < 100 && (await hits()) === before; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await hits()).toBe(before + 1);
  });

  it('ends the session without running the statement when the record cannot be made durable', async () => {
    const c = new pg.Client({ connectionString: await px.url() });
    c.on('error', () => {});
    await c.connect();
    const before = await hits();
    const insert = c.query('INSERT INTO hits VALUES (3)');
    await until(() => sink.waiting > 0);
    sink.release(new PgwardenError('PGW_AUDIT_UNAVAILABLE', { detail: 'disk full' }));
    await expect(insert).rejects.toMatchObject({ code: '53000' });
    await new Promise((r) => setTimeout(r, 100));
    expect(await hits()).toBe(before);
    await c.end().catch(() => {});

    // Other sessions carry on.
    const d = new pg.Client({ connectionString: await px.url() });
    await d.connect();
    try {
      const read = d.query('SELECT 1 AS one FROM hits LIMIT 1');
      await until(() => sink.waiting > 0);
      sink.release();
      expect((await read).rows).toEqual([{ one: 1 }]);
    } finally {
      await d.end();
    }
  });
});
