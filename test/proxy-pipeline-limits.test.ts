import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCatalog } from '../src/policy/catalog.js';
import { createPolicyJudge } from '../src/policy/engine.js';
import { WITHHELD_MESSAGE } from '../src/session/redact-error.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';
import { RawClient } from './support/raw-client.js';

/**
 * What one session's pipeline may cost everyone else: memory held for requests the server has not
 * answered, and event-loop time spent on its error messages (red team, round 32).
 */

let db: TestDatabase;
let px: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase('pipelim');
  await db.sql(`CREATE TABLE items (id int PRIMARY KEY)`);
  // The policy engine, for DECLARE: the strict test judge allows plain SELECTs only.
  const judge = createPolicyJudge(
    {
      version: 1,
      tenant: { claim: 'tenant' },
      tables: { 'public.items': { scope: 'global', access: ['select'] } },
    },
    await loadCatalog(db.url, 'public'),
    { searchPath: 'public' },
  );
  px = await startTestProxy(db, { judge });
});
afterAll(async () => {
  await px?.close();
  await db?.drop();
});

async function login(): Promise<RawClient> {
  const c = await RawClient.connect(px.port);
  await c.login('support-bot', db.name, await px.token());
  return c;
}

async function stillServes(): Promise<void> {
  const c = new pg.Client({ connectionString: await px.url() });
  await c.connect();
  expect((await c.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 0 }]);
  await c.end();
}

/** The recorded error of the last execution of `sql`. */
function recordedError(sql: string): string | null | undefined {
  const record = px.sink.records.filter((r) => r.sql === sql).at(-1);
  return px.sink.outcomes.find((o) => o.recordId === record?.id)?.errorMessage;
}

describe('a pipeline that the server does not answer', () => {
  it('keeps one mark for a run of Flushes, however long', async () => {
    const c = await login();
    const flushes = Buffer.concat(Array.from({ length: 100_000 }, () => serialize.flush()));
    const before = process.memoryUsage().heapUsed;
    // Two million Flushes: each queued a 190-byte mark the server never answers, until the
    // process ran out of memory.
    for (let i = 0; i < 20; i++) {
      c.send(flushes);
      await new Promise((r) => setTimeout(r, 20));
    }
    c.send(serialize.query('SELECT count(*) FROM items'));
    expect((await c.untilReady(20_000)).map((m) => m.code)).toEqual(['T', 'D', 'C', 'Z']);
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(150 * 1024 * 1024);
    c.close();
    await stillServes();
  });
});

describe('a pipeline longer than the requests pgwarden keeps unanswered', () => {
  it('is read on as answers come, and answered in full', async () => {
    const c = await login();
    // Slow enough that the whole pipeline is read before the server has answered 10,000.
    c.send(
      Buffer.concat([
        serialize.parse({ text: 'SELECT count(*) FROM generate_series(1, $1::int) AS g' }),
        serialize.sync(),
      ]),
    );
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['1', 'Z']);
    const n = 15_000;
    const one = Buffer.concat([serialize.bind({ values: ['2000'] }), serialize.execute({})]);
    c.send(Buffer.concat([...Array.from({ length: n }, () => one), serialize.sync()]));
    const answers = await c.untilReady(60_000);
    expect(answers.filter((m) => m.code === 'C')).toHaveLength(n);
    expect(answers.at(-1)?.code).toBe('Z');
    c.close();
  });
});

describe('error messages that may quote parameter values', () => {
  it('are withheld when the Bind has too many values to look for in them', async () => {
    const c = await login();
    const sql = 'SELECT $1::text AS one_parameter';
    c.send(Buffer.concat([serialize.parse({ name: 'many', text: sql }), serialize.sync()]));
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['1', 'Z']);
    // 32,767 values for one parameter: the server refuses the Bind, quoting the counts.
    const values = Array.from({ length: 32_767 }, (_, i) => `v${i}`);
    c.send(
      Buffer.concat([serialize.bind({ statement: 'many', values }), serialize.execute({}), serialize.sync()]),
    );
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['E', 'Z']);
    expect(recordedError(sql)).toBe(WITHHELD_MESSAGE);
    c.close();
  });

  it("of a cursor's FETCH have the values its DECLARE was bound with redacted (red team, round 35)", async () => {
    const c = await login();
    // Row by row, so the server cannot fold it at DECLARE: it fails at FETCH.
    const declare = `DECLARE secret_cursor CURSOR FOR SELECT (id::text || $1::text)::int AS n FROM items`;
    await db.sql(`INSERT INTO items VALUES (1) ON CONFLICT DO NOTHING`);
    try {
      c.send(serialize.query('BEGIN'));
      await c.untilReady();
      c.send(
        Buffer.concat([
          serialize.parse({ text: declare }),
          serialize.bind({ values: ['S3CRET-42'] }),
          serialize.execute({}),
          serialize.sync(),
        ]),
      );
      expect((await c.untilReady()).map((m) => m.code)).toEqual(['1', '2', 'C', 'Z']);
      // The query runs now, and its error quotes the bound value.
      c.send(serialize.query('FETCH 1 FROM secret_cursor'));
      expect((await c.untilReady()).map((m) => m.code)).toEqual(['E', 'Z']);
      const recorded = recordedError('FETCH 1 FROM secret_cursor');
      expect(recorded).toBe('invalid input syntax for type integer: [redacted]');
      expect(JSON.stringify(px.sink.outcomes)).not.toContain('S3CRET');
    } finally {
      c.close();
      await db.sql('DELETE FROM items');
    }
  });

  it('are withheld when the Bind was too large to keep, and redacted by value when it was not', async () => {
    const c = await login();
    const sql = 'SELECT chr($1::int) AS ch, length($2::text) AS n';
    c.send(Buffer.concat([serialize.parse({ name: 'chr', text: sql }), serialize.sync()]));
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['1', 'Z']);
    // The server prints the value unquoted: "requested character too large for encoding: 123456789".
    const run = async (second: string): Promise<string | null | undefined> => {
      c.send(
        Buffer.concat([
          serialize.bind({ statement: 'chr', values: ['123456789', second] }),
          serialize.execute({}),
          serialize.sync(),
        ]),
      );
      expect((await c.untilReady()).map((m) => m.code)).toEqual(['E', 'Z']);
      return recordedError(sql);
    };
    // Benign look-alike: a small Bind keeps the message, with the value redacted.
    expect(await run('short')).toBe('requested character too large for encoding: [redacted]');
    expect(await run('x'.repeat(20_000))).toBe(WITHHELD_MESSAGE);
    c.close();
    await stillServes();
  });

  it('are withheld for named portals bound while 256 others are held, and redacted before that', async () => {
    const c = await login();
    // Row by row, so the server cannot fold it when it plans the Bind: it fails at Execute.
    const sql = 'SELECT (id::text || $1::text)::int AS n FROM items';
    await db.sql(`INSERT INTO items VALUES (1) ON CONFLICT DO NOTHING`);
    try {
      c.send(Buffer.concat([serialize.parse({ name: 'concat', text: sql }), serialize.sync()]));
      expect((await c.untilReady()).map((m) => m.code)).toEqual(['1', 'Z']);
      // 300 named portals in one transaction: each kept its Bind, 80 MB for 10,000 of them.
      const bindAll = async (): Promise<void> => {
        c.send(serialize.query('BEGIN'));
        await c.untilReady();
        const binds = Array.from({ length: 300 }, (_, i) =>
          serialize.bind({ statement: 'concat', portal: `p${i}`, values: [`S3CRET-${i}`] }),
        );
        c.send(Buffer.concat([...binds, serialize.sync()]));
        expect((await c.untilReady()).filter((m) => m.code === '2')).toHaveLength(300);
      };
      const execute = async (portal: string): Promise<string | null | undefined> => {
        c.send(Buffer.concat([serialize.execute({ portal }), serialize.sync()]));
        expect((await c.untilReady()).map((m) => m.code)).toEqual(['E', 'Z']);
        c.send(serialize.query('ROLLBACK'));
        await c.untilReady();
        return recordedError(sql);
      };
      await bindAll();
      // Benign look-alike: one of the first 256 kept its Bind, so the value is redacted by value.
      expect(await execute('p3')).toBe('invalid input syntax for type integer: [redacted]');
      await bindAll();
      expect(await execute('p299')).toBe(WITHHELD_MESSAGE);
      expect(JSON.stringify(px.sink.outcomes)).not.toContain('S3CRET');
    } finally {
      c.close();
      await db.sql('DELETE FROM items');
    }
    await stillServes();
  });
});
