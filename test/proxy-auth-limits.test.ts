import { connect, createServer, type Server } from 'node:net';
import { pino } from 'pino';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StartupCode } from '../src/protocol/codes.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { TEST_SECRET, startTestProxy, type TestProxy } from './support/proxy.js';
import { RawClient, errorOf, startupPacket, type RawMessage } from './support/raw-client.js';

let db: TestDatabase;
let px: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase('authlim');
  await db.sql(`CREATE TABLE items (id int PRIMARY KEY);
    INSERT INTO items SELECT generate_series(1, 3);`);
  px = await startTestProxy(db, { tables: ['public.items'] });
});
afterAll(async () => {
  await px?.close();
  await db?.drop();
});

/** Every field of an ErrorResponse, by its one-letter code. */
function fieldsOf(m: RawMessage | undefined): Record<string, string> {
  expect(m?.code).toBe('E');
  const fields: Record<string, string> = {};
  for (const part of m!.body.toString('utf8').split('\0')) if (part) fields[part[0]!] = part.slice(1);
  return fields;
}

async function stillServes(p: TestProxy = px): Promise<void> {
  const c = new pg.Client({ connectionString: await p.url() });
  await c.connect();
  expect((await c.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 3 }]);
  await c.end();
}

describe('before authentication', () => {
  it('refuses a password message over limits.maxStartupMessageBytes as an authentication failure', async () => {
    expect(px.config.limits.maxMessageBytes).toBe(16 * 1024 * 1024);
    const c = await RawClient.connect(px.port);
    c.send(serialize.startup({ user: 'support-bot', database: db.name }));
    expect((await c.read())?.code).toBe('R');
    // Only the header of a 16 MB message: pgwarden refuses it on its length, without waiting for it.
    const header = Buffer.alloc(5);
    header[0] = 0x70;
    header.writeInt32BE(16 * 1024 * 1024 - 64, 1);
    c.send(Buffer.concat([header, Buffer.alloc(64 * 1024, 0x41)]));
    const f = fieldsOf(await c.read());
    expect(f).toMatchObject({
      V: 'FATAL',
      C: '28P01',
      M: 'password authentication failed for user "support-bot"',
      D: 'before authentication pgwarden accepts messages of at most 65536 bytes',
    });
    expect(await c.read()).toBeUndefined();
    expect(px.sink.records.some((r) => r.kind === 'auth_failure' && /too large/.test(r.detail ?? ''))).toBe(
      true,
    );
    await stillServes();
  });

  it('reads no more than one message ahead of what it asked for, however fast a client sends', async () => {
    // A second's delay before the bad token's FATAL: the red team (round 33) streamed 400 MB into
    // pgwarden's memory in that second.
    const slow = await startTestProxy(db, {
      tables: ['public.items'],
      config: { auth: { hs256Secret: TEST_SECRET, failureDelayMs: 1000 } },
    });
    try {
      const c = await RawClient.connect(slow.port);
      c.send(serialize.startup({ user: 'support-bot', database: db.name }));
      expect((await c.read())?.code).toBe('R');
      c.send(serialize.password('not a token'));
      const junk = Buffer.alloc(1024 * 1024, 0x41);
      const deadline = Date.now() + 800;
      while (Date.now() < deadline && !c.closed) {
        if (!c.socket.write(junk))
          await new Promise((r) => {
            c.socket.once('drain', r);
            setTimeout(r, 50);
          });
      }
      // What the kernel's socket buffers hold, and no more: pgwarden stopped reading.
      expect(c.socket.bytesWritten - c.socket.writableLength).toBeLessThan(48 * 1024 * 1024);
      expect(fieldsOf(await c.read(3000))).toMatchObject({ C: '28P01' });
      await stillServes(slow);
    } finally {
      await slow.close();
    }
  });

  it('accepts large messages once authenticated', async () => {
    const c = await RawClient.connect(px.port);
    await c.login('support-bot', db.name, await px.token());
    c.send(serialize.query(`SELECT count(*) FROM items WHERE '${'x'.repeat(100 * 1024)}' <> ''`));
    const reply = await c.untilReady();
    expect(reply.map((m) => m.code).join('')).toBe('TDCZ');
    c.close();
  });

  it('answers a wrong database name like any authentication failure, naming the database only to a valid token', async () => {
    const bad = await RawClient.connect(px.port);
    bad.send(serialize.startup({ user: 'support-bot', database: 'not_this_one' }));
    expect((await bad.read())?.code).toBe('R'); // asked for the password like any other client
    bad.send(serialize.password('not-a-token'));
    const f = fieldsOf(await bad.read());
    expect(f).toMatchObject({
      V: 'FATAL',
      C: '28P01',
      M: 'password authentication failed for user "support-bot"',
    });
    expect(JSON.stringify(f)).not.toContain(db.name);

    const good = await RawClient.connect(px.port);
    good.send(serialize.startup({ user: 'support-bot', database: 'not_this_one' }));
    expect((await good.read())?.code).toBe('R');
    good.send(serialize.password(await px.token()));
    expect(fieldsOf(await good.read())).toMatchObject({
      C: '28P01',
      M: 'password authentication failed for user "support-bot"',
      H: `connect to database "${db.name}"`,
    });
    expect(
      px.sink.records.some(
        (r) => r.kind === 'auth_failure' && r.detail === 'database "not_this_one" is not served by pgwarden',
      ),
    ).toBe(true);
  });

  it('allows SSLRequest after a declined GSSENCRequest on the same connection, and nothing else twice', async () => {
    const c = await RawClient.connect(px.port);
    c.send(startupPacket(StartupCode.GSSENCRequest));
    expect(await c.readByte()).toBe('N');
    c.send(startupPacket(StartupCode.SSLRequest));
    expect(await c.readByte()).toBe('N'); // no certificate in this test proxy
    expect((await c.login('support-bot', db.name, await px.token())).at(-1)?.code).toBe('Z');
    c.close();

    for (const [a, b] of [
      [StartupCode.SSLRequest, StartupCode.GSSENCRequest],
      [StartupCode.SSLRequest, StartupCode.SSLRequest],
      [StartupCode.GSSENCRequest, StartupCode.GSSENCRequest],
    ] as const) {
      const r = await RawClient.connect(px.port);
      r.send(startupPacket(a));
      expect(await r.readByte()).toBe('N');
      r.send(startupPacket(b));
      expect(errorOf(await r.read())).toMatchObject({
        code: '08P01',
        message: 'encryption was already negotiated',
      });
    }
  });
});

describe('connection limits', () => {
  it('counts unauthenticated connections apart: beyond maxStartupConnections the oldest makes room', async () => {
    const p = await startTestProxy(db, {
      tables: ['public.items'],
      config: { limits: { maxStartupConnections: 2, maxConnections: 3 } },
    });
    try {
      const idle = [await RawClient.connect(p.port), await RawClient.connect(p.port)];
      await expect.poll(() => p.proxy.startupCount()).toBe(2);
      const extra = await RawClient.connect(p.port);
      expect(await idle[0]!.read()).toBeUndefined(); // closed without an answer
      expect(p.proxy.startupCount()).toBe(2);
      expect((await extra.login('support-bot', db.name, await p.token())).at(-1)?.code).toBe('Z');
      extra.close();
      for (const c of idle) c.close();
      await expect.poll(() => p.proxy.startupCount()).toBe(0);

      // Authenticated sessions do not hold startup slots: three log in one after another.
      const sessions: RawClient[] = [];
      for (let i = 0; i < 3; i++) {
        const c = await RawClient.connect(p.port);
        expect((await c.login('support-bot', db.name, await p.token())).at(-1)?.code).toBe('Z');
        sessions.push(c);
      }
      expect(p.proxy.sessionCount()).toBe(3);
      expect(p.proxy.startupCount()).toBe(0);
      const over = await RawClient.connect(p.port);
      const answer = await over.login('support-bot', db.name, await p.token());
      expect(errorOf(answer.at(-1))).toMatchObject({ severity: 'FATAL', code: '53300' });
      for (const c of sessions) c.close();
      await expect.poll(() => p.proxy.sessionCount()).toBe(0);
      await stillServes(p);
    } finally {
      await p.close();
    }
  });
});

describe('connections in startup from one address', () => {
  it('are limited, so one host cannot keep everyone else from logging in', async () => {
    const p = await startTestProxy(db, {
      tables: ['public.items'],
      config: { limits: { maxStartupConnections: 10, maxStartupConnectionsPerAddress: 3 } },
    });
    const clients: RawClient[] = [];
    try {
      // The attack: idle connections that never send a startup packet, all from 127.0.0.2.
      for (let i = 0; i < 3; i++) clients.push(await RawClient.connect(p.port, '127.0.0.2'));
      await expect.poll(() => p.proxy.startupCount()).toBe(3);
      const fourth = await RawClient.connect(p.port, '127.0.0.2');
      clients.push(fourth);
      expect(await fourth.read()).toBeUndefined(); // closed without an answer
      expect(p.proxy.startupCount()).toBe(3);

      // Everyone else still logs in, while the attacker's connections are held open.
      await stillServes(p);
      const other = await RawClient.connect(p.port, '127.0.0.3');
      clients.push(other);
      expect((await other.login('support-bot', db.name, await p.token())).at(-1)?.code).toBe('Z');

      // The benign look-alike: one host with a pool of clients that log in together. A login
      // leaves the startup count at once, so more than the limit log in one after another.
      const pool: pg.Client[] = [];
      for (let i = 0; i < 5; i++) {
        const c = new pg.Client({ connectionString: await p.url() });
        await c.connect();
        pool.push(c);
      }
      await Promise.all(pool.map((c) => c.query('SELECT 1')));
      await Promise.all(pool.map((c) => c.end()));
    } finally {
      for (const c of clients) c.close();
      await p.close();
    }
  });
});

describe('a full startup pool', () => {
  it('makes room at the expense of the address holding most of it, never a host with fewer', async () => {
    const p = await startTestProxy(db, {
      tables: ['public.items'],
      config: { limits: { maxStartupConnections: 4, maxStartupConnectionsPerAddress: 3 } },
    });
    const clients: RawClient[] = [];
    const from = async (address: string): Promise<RawClient> => {
      const c = await RawClient.connect(p.port, address);
      clients.push(c);
      return c;
    };
    try {
      // The attack: idle tokenless connections from two hosts fill the pool (3 + 1).
      const attacker = [await from('127.0.0.2'), await from('127.0.0.2'), await from('127.0.0.2')];
      const quiet = await from('127.0.0.3');
      await expect.poll(() => p.proxy.startupCount()).toBe(4);

      // A third host still logs in: the attacker's oldest connection makes room.
      const other = await from('127.0.0.4');
      expect((await other.login('support-bot', db.name, await p.token())).at(-1)?.code).toBe('Z');
      expect(await attacker[0]!.read()).toBeUndefined();

      // Reconnecting from more addresses only displaces the attacker's own connections.
      attacker.push(await from('127.0.0.2'));
      await expect.poll(() => p.proxy.startupCount()).toBe(4);
      for (const address of ['127.0.0.5', '127.0.0.6']) {
        await from(address);
        await expect.poll(() => p.proxy.startupCount()).toBe(4);
      }
      expect(await attacker[1]!.read()).toBeUndefined();
      expect(await attacker[2]!.read()).toBeUndefined();

      // The benign look-alike: the host with one connection in startup keeps it, and logs in.
      expect((await quiet.login('support-bot', db.name, await p.token())).at(-1)?.code).toBe('Z');

      // Silent connections from as many addresses as the pool has slots (127.0.0.2, .5, .6, .7):
      // a newcomer from yet another address takes the place of the oldest of them, and logs in.
      await from('127.0.0.7');
      await expect.poll(() => p.proxy.startupCount()).toBe(4);
      const newcomer = await from('127.0.0.8');
      expect(await attacker[3]!.read()).toBeUndefined();
      expect(p.proxy.startupCount()).toBe(4);
      expect((await newcomer.login('support-bot', db.name, await p.token())).at(-1)?.code).toBe('Z');
      for (const c of clients) c.close();
      await expect.poll(() => p.proxy.startupCount()).toBe(0);
      await stillServes(p);
    } finally {
      for (const c of clients) c.close();
      await p.close();
    }
  });
});

describe('the log', () => {
  it('keeps clients that leave before a word out of it, and still reports a broken startup', async () => {
    const lines: { level: number; event?: string; code?: string }[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    const p = await startTestProxy(db, { tables: ['public.items'], logger });
    try {
      // The attack: tokenless clients connecting and leaving in a loop (5,000 error lines a second).
      for (let i = 0; i < 10; i++) {
        const c = await RawClient.connect(p.port);
        if (i % 2) c.end();
        else c.close();
      }
      await expect.poll(() => p.proxy.startupCount()).toBe(0);
      expect(lines.filter((l) => l.event === 'session_fatal')).toEqual([]);
      // The benign look-alike: a client that breaks the protocol is still worth a line.
      const bad = await RawClient.connect(p.port);
      bad.send(Buffer.from([0, 0, 0, 8, 0x12, 0x34, 0x56, 0x78]));
      expect(await bad.read()).toBeDefined();
      await expect
        .poll(() => lines.filter((l) => l.event === 'session_fatal').map((l) => l.code))
        .toEqual(['PGW_PROTOCOL_VIOLATION']);
    } finally {
      await p.close();
    }
  });
});

describe('a client that leaves while its server connection is being opened', () => {
  it("keeps its human's place in the limits until that connection is settled (red team, round 35)", async () => {
    // A relay that takes 600 ms to reach the server: the window in which the client leaves.
    const relay: Server = createServer((c) => {
      c.on('error', () => {});
      setTimeout(() => {
        const u = connect(db.port, db.host);
        u.on('error', () => c.destroy());
        c.on('close', () => u.destroy());
        c.pipe(u);
        u.pipe(c);
      }, 600);
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    const port = (relay.address() as { port: number }).port;
    const slow = await startTestProxy(db, {
      tables: ['public.items'],
      config: {
        upstream: { host: '127.0.0.1', port, database: db.name, user: db.user, password: db.password },
        limits: { maxSessionsPerHuman: 1 },
      },
    });
    try {
      const leaving = await RawClient.connect(slow.port);
      leaving.send(serialize.startup({ user: 'support-bot', database: db.name }));
      expect((await leaving.read())?.code).toBe('R');
      leaving.send(serialize.password(await slow.token()));
      await new Promise((r) => setTimeout(r, 150));
      leaving.socket.destroy();
      // Its server connection is still being opened: a second session of the same human waits.
      const second = new pg.Client({ connectionString: await slow.url() });
      await expect(second.connect()).rejects.toMatchObject({ code: '53300' });
      await new Promise((r) => setTimeout(r, 1200));
      const third = new pg.Client({ connectionString: await slow.url() });
      await third.connect();
      expect((await third.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 3 }]);
      await third.end();
    } finally {
      await slow.close();
      await new Promise((r) => relay.close(r));
    }
  });
});

describe('sessions of one human', () => {
  it('are limited by maxSessionsPerHuman across agents, and a tenant by maxSessionsPerTenant across humans', async () => {
    const p = await startTestProxy(db, {
      tables: ['public.items'],
      config: { limits: { maxSessionsPerHuman: 2, maxSessionsPerTenant: 3 } },
    });
    const open: pg.Client[] = [];
    const login = async (o: Parameters<TestProxy['token']>[0] = {}): Promise<pg.Client> => {
      const c = new pg.Client({ connectionString: await p.url(o) });
      c.on('error', () => undefined);
      await c.connect();
      open.push(c);
      return c;
    };
    try {
      await login();
      await login({ agent: 'another-bot' });
      const err = await login().then(
        () => undefined,
        (e: unknown) => e as pg.DatabaseError,
      );
      expect(err).toMatchObject({
        code: '53300',
        severity: 'FATAL',
        message: 'too many connections for alice@acme.test in tenant acme',
      });
      // Benign look-alikes: another human of the same tenant, the same name in another tenant.
      await login({ human: 'bob@acme.test' });
      await login({ tenant: 'globex' });
      // The bypass: tokens for more humans of one tenant. The tenant's count stops them.
      const tenantErr = await login({ human: 'carol@acme.test' }).then(
        () => undefined,
        (e: unknown) => e as pg.DatabaseError,
      );
      expect(tenantErr).toMatchObject({ code: '53300', message: 'too many connections for tenant acme' });
      // A session that ends gives its slot back.
      await open[0]!.end();
      await expect.poll(() => p.proxy.sessionCount()).toBe(3);
      const again = await login();
      expect((await again.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 3 }]);
    } finally {
      await Promise.all(open.map((c) => c.end().catch(() => undefined)));
      await p.close();
    }
  });
});

describe('token expiry', () => {
  it('ends an idle session in a transaction when its token expires', async () => {
    const c = await RawClient.connect(px.port);
    await c.login('support-bot', db.name, await px.token({ ttlSeconds: 2 }));
    c.send(serialize.query('BEGIN'));
    expect((await c.untilReady()).at(-1)?.body.toString()).toBe('T');
    // Nothing more is sent: the session must end by itself (generous wait, no timing assertion).
    expect(errorOf(await c.read(15_000))).toMatchObject({
      severity: 'FATAL',
      code: '28000',
      message: 'the token of this session has expired; reconnect with a fresh token',
    });
    expect(await c.read()).toBeUndefined();
    await expect
      .poll(() => px.sink.records.some((r) => r.kind === 'session_end' && r.detail === 'PGW_TOKEN_EXPIRED'))
      .toBe(true);
  });
});

describe('upstream failures after authentication', () => {
  it('gives the agent a generic 08006 and keeps the server text for operators', async () => {
    const p = await startTestProxy(db, {
      tables: ['public.items'],
      config: {
        upstream: {
          host: db.host,
          port: db.port,
          database: 'no_such_database_here',
          user: db.user,
          password: db.password,
        },
      },
    });
    try {
      const c = await RawClient.connect(p.port);
      const msgs = await c.login('support-bot', 'no_such_database_here', await p.token());
      const f = fieldsOf(msgs.at(-1));
      expect(f).toMatchObject({ V: 'FATAL', C: '08006', M: 'pgwarden cannot reach the database' });
      expect(f.D).toBeUndefined();
      expect(JSON.stringify(f)).not.toMatch(/no_such_database_here|does not exist|\d+\.\d+\.\d+\.\d+/);
    } finally {
      await p.close();
    }
  });
});
