import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StartupCode } from '../src/protocol/codes.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';
import { RawClient, errorOf, startupPacket } from './support/raw-client.js';

let db: TestDatabase;
let px: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase('proto');
  await db.sql(`CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
    INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g;
    CREATE TABLE secrets (id int, secret text);`);
  px = await startTestProxy(db, {
    tables: ['public.items'],
    config: { limits: { maxMessageBytes: 64 * 1024, maxConnections: 20 } },
  });
});
afterAll(async () => {
  await px?.close();
  await db?.drop();
});

/** The proxy must keep serving others after any bad input: checked after each attack. */
async function stillServes(): Promise<void> {
  const c = new pg.Client({ connectionString: await px.url() });
  await c.connect();
  expect((await c.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 10 }]);
  await c.end();
}

describe('bad input gets a clear error and the proxy keeps serving', () => {
  it('garbage before startup', async () => {
    const c = await RawClient.connect(px.port);
    c.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const m = await c.read();
    expect(errorOf(m)).toMatchObject({ severity: 'FATAL' });
    expect(await c.read()).toBeUndefined();
    await stillServes();
  });

  it('an unsupported protocol version', async () => {
    const c = await RawClient.connect(px.port);
    c.send(startupPacket(2 << 16, Buffer.from('user\0x\0\0')));
    expect(errorOf(await c.read())).toMatchObject({
      severity: 'FATAL',
      code: '08P01',
      message: expect.stringContaining('unsupported frontend protocol 2.0'),
    });
    await stillServes();
  });

  it('protocol 3.2 is negotiated down to 3.0 with NegotiateProtocolVersion', async () => {
    const c = await RawClient.connect(px.port);
    const startup = Buffer.from(
      serialize.startup({ user: 'support-bot', database: db.name, '_pq_.test_option': 'x' }),
    );
    startup.writeInt32BE(StartupCode.Protocol32, 4);
    c.send(startup);
    const v = await c.read();
    expect(v?.code).toBe('v');
    expect(v!.body.readInt32BE(0)).toBe(0);
    expect(await c.read()).toMatchObject({ code: 'R' });
    c.send(serialize.password(await px.token()));
    const msgs = await c.untilReady();
    expect(msgs.map((m) => m.code)).toContain('K');
    expect(msgs.at(-1)?.code).toBe('Z');
    c.close();
  });

  it('GSSENCRequest is declined and SSLRequest declined when no certificate is configured', async () => {
    const c = await RawClient.connect(px.port);
    c.send(startupPacket(StartupCode.GSSENCRequest));
    expect(await c.readByte()).toBe('N');
    c.close();
    const s = await RawClient.connect(px.port);
    s.send(startupPacket(StartupCode.SSLRequest));
    expect(await s.readByte()).toBe('N');
    const msgs = await s.login('support-bot', db.name, await px.token());
    expect(msgs.at(-1)?.code).toBe('Z');
    s.close();
  });

  it('startup options that would change how SQL is read are refused', async () => {
    const attempts: Record<string, string>[] = [
      { options: '-c search_path=evil' },
      { search_path: 'evil' },
      { replication: 'database' },
    ];
    for (const extra of attempts) {
      const c = await RawClient.connect(px.port);
      c.send(serialize.startup({ user: 'support-bot', database: db.name, ...extra }));
      expect(errorOf(await c.read())).toMatchObject({ severity: 'FATAL', code: '28000' });
    }
    await stillServes();
  });

  it("a display setting the server does not take is refused as the client's, not as an outage (red team, round 46)", async () => {
    for (const extra of [{ DateStyle: 'bogus' }, { TimeZone: 'Nowhere/Bogus' }] as Record<string, string>[]) {
      const c = await RawClient.connect(px.port);
      const answer = await c.login('support-bot', db.name, await px.token(), extra);
      expect(errorOf(answer.at(-1))).toMatchObject({
        severity: 'FATAL',
        code: '28000',
        message: expect.stringContaining(`invalid value for parameter "${Object.keys(extra)[0]}"`),
      });
      c.close();
    }
    // The look-alike: values it takes are forwarded and the session opens.
    const ok = await RawClient.connect(px.port);
    const answer = await ok.login('support-bot', db.name, await px.token(), { DateStyle: 'ISO, DMY' });
    expect(answer.at(-1)?.code).toBe('Z');
    ok.close();
    await stillServes();
  });

  it('an oversized message ends that session with 54000 only', async () => {
    const c = await RawClient.connect(px.port);
    await c.login('support-bot', db.name, await px.token());
    c.send(serialize.query(`SELECT '${'x'.repeat(100 * 1024)}'`));
    expect(errorOf(await c.read())).toMatchObject({ severity: 'FATAL', code: '54000' });
    await stillServes();
  });

  it('a query text over limits.maxQueryBytes is refused with ERROR 54000 and the session goes on', async () => {
    const small = await startTestProxy(db, {
      tables: ['public.items'],
      config: { limits: { maxQueryBytes: 100 } },
    });
    const c = await RawClient.connect(small.port);
    await c.login('support-bot', db.name, await small.token());
    c.send(serialize.query(`SELECT 1 FROM items WHERE '${'é'.repeat(40)}' <> ''`)); // 60 characters, over 100 bytes
    const refused = await c.untilReady();
    expect(errorOf(refused[0])).toMatchObject({ severity: 'ERROR', code: '54000' });
    c.send(serialize.query('SELECT 1 FROM items LIMIT 1'));
    expect((await c.untilReady()).map((m) => m.code).join('')).toBe('TDCZ');
    c.close();
    await small.close();
  });

  it('a malformed message ends that session with 08P01', async () => {
    const c = await RawClient.connect(px.port);
    await c.login('support-bot', db.name, await px.token());
    c.send(Buffer.from([0x51, 0, 0, 0, 8, 0x41, 0x42, 0x43, 0x44])); // Query without its terminator
    expect(errorOf(await c.read())).toMatchObject({ severity: 'FATAL', code: '08P01' });
    await stillServes();
  });

  it('unknown message types and FunctionCall are refused, never passed through', async () => {
    const unknown = await RawClient.connect(px.port);
    await unknown.login('support-bot', db.name, await px.token());
    unknown.send(Buffer.from([0x21, 0, 0, 0, 4]));
    expect(errorOf(await unknown.read())).toMatchObject({ severity: 'FATAL', code: '08P01' });

    const fn = await RawClient.connect(px.port);
    await fn.login('support-bot', db.name, await px.token());
    // FunctionCall: OID 1 (nonsense), no args, text result.
    fn.send(Buffer.from([0x46, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
    const reply = await fn.untilReady();
    expect(errorOf(reply[0])).toMatchObject({ severity: 'ERROR', code: '0A000' });
    expect(reply.at(-1)?.code).toBe('Z');
    await stillServes();
  });

  it('COPY data sent without waiting for the go-ahead of a refused COPY is dropped, as the server drops it, and the session goes on (red team, round 50)', async () => {
    const copy = await RawClient.connect(px.port);
    try {
      await copy.login('support-bot', db.name, await px.token());
      // asyncpg's copy_records_to_table: the COPY, its data and its end in one go.
      copy.send(
        Buffer.concat([
          serialize.query('COPY products FROM STDIN'),
          serialize.copyData(Buffer.from('1\tx\n')),
          serialize.copyDone(),
        ]),
      );
      const refused = await copy.untilReady();
      expect(errorOf(refused[0])).toMatchObject({ severity: 'ERROR', code: '42501' });
      // Stray data on its own, and a CopyFail, are dropped too.
      copy.send(Buffer.concat([serialize.copyData(Buffer.from('2\ty\n')), serialize.copyFail('stop')]));
      copy.send(serialize.query('SELECT 1'));
      expect((await copy.untilReady()).map((m) => m.code).join('')).toBe('TDCZ');
    } finally {
      copy.close();
    }
  });

  it('an empty query is answered as the server answers it (EmptyQueryResponse), in both protocols (red team, round 50)', async () => {
    const c = await RawClient.connect(px.port);
    try {
      await c.login('support-bot', db.name, await px.token());
      // pgJDBC's Connection.isValid() sends one; a refusal made it report every connection dead.
      c.send(serialize.query(''));
      expect((await c.untilReady()).map((m) => m.code).join('')).toBe('IZ');
      c.send(
        Buffer.concat([
          serialize.parse({ text: '' }),
          serialize.bind({}),
          serialize.execute({}),
          serialize.sync(),
        ]),
      );
      expect((await c.untilReady()).map((m) => m.code).join('')).toBe('12IZ');
    } finally {
      c.close();
    }
  });

  it('a client that disconnects mid-query does not disturb others', async () => {
    const c = await RawClient.connect(px.port);
    await c.login('support-bot', db.name, await px.token());
    c.send(serialize.query('SELECT pg_sleep(5) FROM items LIMIT 1'));
    await new Promise((r) => setTimeout(r, 100));
    c.close();
    await stillServes();
  });

  it('a client that leaves during authentication leaves no upstream connection behind', async () => {
    const count = async (): Promise<number> =>
      Number(
        (
          await db.sql<{ n: string }>(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'pgwarden/leaving-bot'",
          )
        )[0]?.n,
      );
    const token = await px.token({ agent: 'leaving-bot' });
    for (let i = 0; i < 10; i++) {
      const c = await RawClient.connect(px.port);
      c.send(serialize.startup({ user: 'support-bot', database: db.name }));
      await c.read();
      c.send(serialize.password(token));
      await new Promise((r) => setTimeout(r, i)); // leave at different points of the upstream start
      c.close();
    }
    await new Promise((r) => setTimeout(r, 1000));
    expect(await count()).toBe(0);
    await stillServes();
  });

  it('refuses connections beyond the limit with 53300', async () => {
    // limits.maxConnections counts authenticated sessions (see proxy-auth-limits.test.ts).
    const clients: RawClient[] = [];
    for (let i = 0; i < 20; i++) {
      const c = await RawClient.connect(px.port);
      await c.login('support-bot', db.name, await px.token());
      clients.push(c);
    }
    // Told once its token is verified: a client without one learns nothing of how full it is.
    const extra = await RawClient.connect(px.port);
    const answer = await extra.login('support-bot', db.name, await px.token());
    expect(errorOf(answer.at(-1))).toMatchObject({ severity: 'FATAL', code: '53300' });
    for (const c of [...clients, extra]) c.close();
    await new Promise((r) => setTimeout(r, 200));
    await stillServes();
  });
});

describe('timeouts', () => {
  it('ends a connection that does not finish startup in time, and an idle session', async () => {
    const quick = await startTestProxy(db, {
      tables: ['public.items'],
      config: { limits: { startupTimeoutMs: 300, idleTimeoutMs: 300 } },
    });
    const silent = await RawClient.connect(quick.port);
    expect(errorOf(await silent.read())).toMatchObject({
      severity: 'FATAL',
      code: '08P01',
      message: 'startup timed out',
    });
    const idle = await RawClient.connect(quick.port);
    const ready = await idle.login('support-bot', db.name, await quick.token());
    expect(ready.at(-1)?.code).toBe('Z');
    expect(errorOf(await idle.read())).toMatchObject({
      severity: 'FATAL',
      message: 'idle session timed out',
    });
    await quick.close();
  });
});

describe('shutdown', () => {
  it('close() ends even when clients never close their side', async () => {
    const doomed = await startTestProxy(db, {
      tables: ['public.items'],
      config: { limits: { maxConnections: 1 } },
    });
    const silent = await RawClient.connect(doomed.port);
    const session = await RawClient.connect(doomed.port);
    await session.login('support-bot', db.name, await doomed.token());
    const refused = await RawClient.connect(doomed.port);
    const answer = await refused.login('support-bot', db.name, await doomed.token());
    expect(errorOf(answer.at(-1))).toMatchObject({ severity: 'FATAL', code: '53300' });
    // None of the clients closes: the proxy's close must not wait for them.
    await doomed.close();
    expect(errorOf(await session.read())).toMatchObject({ severity: 'FATAL', code: '57P01' });
    for (const c of [silent, session, refused]) c.close();
  });
});

describe('extended protocol error semantics', () => {
  it('after a denied Parse, skips to Sync and answers one ReadyForQuery with the true status', async () => {
    const c = await RawClient.connect(px.port);
    await c.login('support-bot', db.name, await px.token());
    c.send(
      Buffer.concat([
        serialize.query('BEGIN'),
        serialize.parse({ text: 'SELECT secret FROM secrets' }),
        serialize.bind({}),
        serialize.execute({}),
        serialize.sync(),
        serialize.parse({ text: 'SELECT 1 FROM items' }),
        serialize.bind({}),
        serialize.execute({}),
        serialize.sync(),
        serialize.query('ROLLBACK'),
      ]),
    );
    const begin = await c.untilReady();
    expect(begin.at(-1)?.body.toString()).toBe('T');
    const denied = await c.untilReady();
    expect(denied.map((m) => m.code)).toEqual(['E', 'Z']);
    expect(errorOf(denied[0])).toMatchObject({ code: '42501', message: expect.stringContaining('secrets') });
    expect(denied[1]!.body.toString()).toBe('E'); // in a failed transaction block, as Postgres would be
    const aborted = await c.untilReady();
    expect(errorOf(aborted[0])).toMatchObject({ code: '25P02' });
    const rollback = await c.untilReady();
    expect(rollback.at(-1)?.body.toString()).toBe('I');
    c.close();
  });

  it('stays in step when the server rejects a message before the client has sent Sync', async () => {
    const c = await RawClient.connect(px.port);
    await c.login('support-bot', db.name, await px.token());
    // Bind supplies two parameters to a statement that takes one: the server refuses the Bind.
    c.send(
      Buffer.concat([
        serialize.parse({ text: 'SELECT name FROM items WHERE id = $1', types: [23] }),
        serialize.bind({ values: ['1', '2'] }),
        serialize.execute({}),
        serialize.flush(),
      ]),
    );
    expect((await c.read())?.code).toBe('1');
    expect(errorOf(await c.read())).toMatchObject({ code: '08P01' });
    // Sent after the error: the server discards it up to Sync, and so must pgwarden's bookkeeping.
    c.send(Buffer.concat([serialize.describe({ type: 'P' }), serialize.sync()]));
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['Z']);
    c.send(serialize.query("SELECT 'in-step' AS marker FROM items LIMIT 2"));
    expect((await c.untilReady()).map((m) => m.code).join('')).toBe('TDDCZ');
    const record = px.sink.records.find((r) => r.sql?.includes('in-step'));
    expect(px.sink.outcomes.find((o) => o.recordId === record?.id)).toMatchObject({
      command: 'SELECT 2',
      rows: 2,
    });
    c.close();
  });

  it('records an unnamed statement whose Bind fails before its Execute arrives', async () => {
    const c = await RawClient.connect(px.port);
    await c.login('support-bot', db.name, await px.token());
    // The server plans the Bind with the value, folds chr(123456789), and fails there: the
    // statement reaches the server, but the Execute that records it comes after the error.
    c.send(
      Buffer.concat([
        serialize.parse({ text: 'SELECT chr($1::int) AS bind_fails FROM items LIMIT 1', types: [23] }),
        serialize.bind({ values: ['123456789'] }),
        serialize.flush(),
      ]),
    );
    expect((await c.read())?.code).toBe('1');
    expect(errorOf(await c.read())).toMatchObject({ code: '54000' });
    c.send(Buffer.concat([serialize.execute({}), serialize.sync()]));
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['Z']);
    const record = px.sink.records.find((r) => r.sql?.includes('bind_fails'));
    expect(record).toBeDefined();
    expect(px.sink.outcomes.find((o) => o.recordId === record?.id)).toMatchObject({
      command: 'BIND FAILED',
      sqlstate: '54000',
    });
    // Look-alike: sent together, the Execute records the statement, and the Bind's failure is
    // its outcome; there is no second record.
    c.send(
      Buffer.concat([
        serialize.parse({ text: 'SELECT chr($1::int) AS bind_fails_too FROM items LIMIT 1', types: [23] }),
        serialize.bind({ values: ['123456789'] }),
        serialize.execute({}),
        serialize.sync(),
      ]),
    );
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['1', 'E', 'Z']);
    const together = px.sink.records.filter((r) => r.sql?.includes('bind_fails_too'));
    expect(together).toHaveLength(1);
    expect(px.sink.outcomes.find((o) => o.recordId === together[0]?.id)).toMatchObject({ sqlstate: '54000' });
    c.close();
  });

  it('records an unnamed statement bound and never executed: the server planned it with the values (red team, round 55)', async () => {
    const c = await RawClient.connect(px.port);
    await c.login('support-bot', db.name, await px.token());
    c.send(
      Buffer.concat([
        serialize.parse({ text: 'SELECT length(repeat($1, 1000)) AS bound_only FROM items LIMIT 1' }),
        serialize.bind({ values: ['abc'] }),
        serialize.sync(),
      ]),
    );
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['1', '2', 'Z']);
    const records = px.sink.records.filter((r) => r.sql?.includes('bound_only'));
    expect(records).toHaveLength(1);
    expect(px.sink.outcomes.filter((o) => o.recordId === records[0]?.id)).toEqual([
      expect.objectContaining({ command: 'BOUND' }),
    ]);
    // Look-alike: bound and executed together, it has the one record of its execution.
    c.send(
      Buffer.concat([
        serialize.parse({ text: 'SELECT length(repeat($1, 1000)) AS bound_and_run FROM items LIMIT 1' }),
        serialize.bind({ values: ['abc'] }),
        serialize.execute({}),
        serialize.sync(),
      ]),
    );
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['1', '2', 'D', 'C', 'Z']);
    const run = px.sink.records.filter((r) => r.sql?.includes('bound_and_run'));
    expect(run).toHaveLength(1);
    expect(px.sink.outcomes.filter((o) => o.recordId === run[0]?.id)).toEqual([
      expect.objectContaining({ command: 'SELECT 1' }),
    ]);
    c.close();
  });

  it('records an unnamed statement whose Parse the server refuses before an Execute of it arrives', async () => {
    const c = await RawClient.connect(px.port);
    await c.login('support-bot', db.name, await px.token());
    // Judged and forwarded, but the server's analysis runs int4's input function on the literal.
    c.send(
      Buffer.concat([
        serialize.parse({ text: "SELECT 'parse_fails'::int AS x FROM items" }),
        serialize.sync(),
      ]),
    );
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['E', 'Z']);
    const record = px.sink.records.find((r) => r.sql?.includes('parse_fails'));
    expect(record).toBeDefined();
    expect(px.sink.outcomes.find((o) => o.recordId === record?.id)).toMatchObject({
      command: 'PARSE FAILED',
      sqlstate: '22P02',
    });
    // Look-alike: with its Execute in the same batch, the Execute's record is the one; no second.
    c.send(
      Buffer.concat([
        serialize.parse({ text: "SELECT 'parse_fails_too'::int AS x FROM items" }),
        serialize.bind({}),
        serialize.execute({}),
        serialize.sync(),
      ]),
    );
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['E', 'Z']);
    const together = px.sink.records.filter((r) => r.sql?.includes('parse_fails_too'));
    expect(together).toHaveLength(1);
    c.close();
  });

  it('stays in step when a FunctionCall comes while the server skips to Sync (red team, round 28)', async () => {
    const c = await RawClient.connect(px.port);
    await c.login('support-bot', db.name, await px.token());
    const functionCall = (): Buffer => {
      const b = Buffer.alloc(15);
      b.write('F', 0);
      b.writeInt32BE(14, 1);
      b.writeInt32BE(1598, 5); // any function OID
      return b;
    };
    c.send(Buffer.concat([serialize.parse({ name: 'S', text: 'SELECT 1 AS x' }), serialize.sync()]));
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['1', 'Z']);
    // A denied Parse: the server fails the stand-in and skips everything up to Sync.
    c.send(Buffer.concat([serialize.parse({ text: 'SELECT secret FROM secrets' }), serialize.flush()]));
    expect(errorOf(await c.read())).toMatchObject({ code: '42501' });
    // The server ignores these, and so must pgwarden's count of what it waits for.
    c.send(Buffer.concat([functionCall(), functionCall(), serialize.sync()]));
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['Z']);
    // S redefined, then an error: only the failing Describe is undone, not the Close and Parse.
    c.send(
      Buffer.concat([
        serialize.close({ type: 'S', name: 'S' }),
        serialize.parse({ name: 'S', text: 'SELECT name AS redefined FROM items WHERE id = 2' }),
        serialize.describe({ type: 'S', name: 'nope' }),
        serialize.sync(),
      ]),
    );
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['3', '1', 'E', 'Z']);
    c.send(Buffer.concat([serialize.bind({ statement: 'S' }), serialize.execute({}), serialize.sync()]));
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['2', 'D', 'C', 'Z']);
    // The execution's record names the statement that ran.
    const executed = px.sink.records.filter(
      (r) => r.protocol?.statementName === 'S' && r.protocol?.portalName === '',
    );
    expect(executed.at(-1)?.sql).toContain('redefined');
    c.close();
  });

  it('counts a Query the server skips after an error as answered, so later pipelines are not held for good (red team, round 32)', async () => {
    const c = await RawClient.connect(px.port);
    await c.login('support-bot', db.name, await px.token());
    c.send(Buffer.concat([serialize.parse({ name: 'S', text: 'SELECT $1::text AS v' }), serialize.sync()]));
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['1', 'Z']);
    // The Bind fails (two values for one parameter); the server skips the Query and answers one
    // ReadyForQuery, for the Sync.
    c.send(
      Buffer.concat([
        serialize.bind({ statement: 'S', values: ['a', 'b'] }),
        serialize.query('SELECT 42'),
        serialize.sync(),
      ]),
    );
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['E', 'Z']);
    // A pipeline that changes the mirror, then one that must wait for it to be answered.
    c.send(Buffer.concat([serialize.parse({ name: 'T', text: 'SELECT 1 AS t' }), serialize.sync()]));
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['1', 'Z']);
    c.send(Buffer.concat([serialize.bind({ statement: 'T' }), serialize.execute({}), serialize.sync()]));
    expect((await c.untilReady(3000)).map((m) => m.code)).toEqual(['2', 'D', 'C', 'Z']);
    c.send(serialize.query('SELECT count(*) FROM items'));
    expect((await c.untilReady(3000)).map((m) => m.code)).toEqual(['T', 'D', 'C', 'Z']);
    c.close();
  });

  it('skips to Sync with the server when a statement timeout fires as it reads a Flush (red team, round 29)', async () => {
    // The timeout an earlier Describe armed fires when the server reads the next message: a Flush
    // then fails and the server skips to Sync; pgwarden must too, or it forwards what is skipped.
    const short = await startTestProxy(db, {
      tables: ['public.items'],
      config: { session: { statementTimeoutMs: 200 } },
    });
    try {
      const c = await RawClient.connect(short.port);
      await c.login('support-bot', db.name, await short.token());
      c.send(
        Buffer.concat([
          serialize.parse({ name: 'S', text: 'SELECT name AS original FROM items WHERE id = 1' }),
          serialize.sync(),
        ]),
      );
      expect((await c.untilReady()).map((m) => m.code)).toEqual(['1', 'Z']);
      c.send(Buffer.concat([serialize.describe({ type: 'S', name: 'S' }), serialize.flush()]));
      expect((await c.read())?.code).toBe('t');
      expect((await c.read())?.code).toBe('T');
      await new Promise((r) => setTimeout(r, 400));
      c.send(serialize.flush());
      expect(errorOf(await c.read())).toMatchObject({ code: '57014' });
      // Skipped by the server up to the Sync: the Close and the new S must not reach pgwarden's mirror.
      c.send(
        Buffer.concat([
          serialize.query('SELECT 1'),
          serialize.close({ type: 'S', name: 'S' }),
          serialize.parse({ name: 'S', text: 'SELECT name AS swapped FROM items WHERE id = 2' }),
          serialize.sync(),
        ]),
      );
      expect((await c.untilReady()).map((m) => m.code)).toEqual(['Z']);
      c.send(Buffer.concat([serialize.bind({ statement: 'S' }), serialize.execute({}), serialize.sync()]));
      const rows = await c.untilReady();
      expect(rows.map((m) => m.code)).toEqual(['2', 'D', 'C', 'Z']);
      const executed = short.sink.records.filter((r) => r.protocol?.statementName === 'S');
      expect(executed.at(-1)?.sql).toContain('original');
      c.close();
    } finally {
      await short.close();
    }
  });

  it("goes on after an ordinary error that follows a Flush: it is the next request's, not the Flush's (red team, round 30)", async () => {
    const c = await RawClient.connect(px.port);
    await c.login('support-bot', db.name, await px.token());
    // A cursor-like read: one row per Execute, a Flush after each (node-postgres cursors do this).
    c.send(
      Buffer.concat([
        serialize.parse({ text: 'SELECT 10 / (2 - id) AS x FROM items ORDER BY id' }),
        serialize.bind({}),
        serialize.execute({ rows: 1 }),
        serialize.flush(),
      ]),
    );
    expect([
      (await c.read())?.code,
      (await c.read())?.code,
      (await c.read())?.code,
      (await c.read())?.code,
    ]).toEqual(['1', '2', 'D', 's']);
    c.send(Buffer.concat([serialize.execute({ rows: 1 }), serialize.flush()]));
    expect(errorOf(await c.read())).toMatchObject({ code: '22012' });
    c.send(serialize.sync());
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['Z']);
    c.send(serialize.query('SELECT name FROM items WHERE id = 4'));
    expect((await c.untilReady()).map((m) => m.code)).toEqual(['T', 'D', 'C', 'Z']);
    c.close();
  });

  it('named statements and portals, pipelined, with Describe and Close', async () => {
    const c = await RawClient.connect(px.port);
    await c.login('support-bot', db.name, await px.token());
    c.send(
      Buffer.concat([
        serialize.parse({ name: 'q1', text: 'SELECT name FROM items WHERE id = $1', types: [23] }),
        serialize.describe({ type: 'S', name: 'q1' }),
        serialize.bind({ statement: 'q1', portal: 'p1', values: ['3'] }),
        serialize.execute({ portal: 'p1' }),
        serialize.bind({ statement: 'q1', portal: 'p2', values: ['4'] }),
        serialize.execute({ portal: 'p2' }),
        serialize.close({ type: 'S', name: 'q1' }),
        serialize.sync(),
      ]),
    );
    const msgs = await c.untilReady();
    expect(msgs.map((m) => m.code).join('')).toBe('1tT2DC2DC3Z');
    expect(msgs.filter((m) => m.code === 'D').map((m) => m.body.subarray(6).toString())).toEqual([
      'item 3',
      'item 4',
    ]);
    // The statement was closed: binding it again is refused by pgwarden, which never judged it.
    c.send(Buffer.concat([serialize.bind({ statement: 'q1' }), serialize.execute({}), serialize.sync()]));
    const after = await c.untilReady();
    expect(errorOf(after[0])).toMatchObject({ code: '26000' });
    c.close();
  });
});
