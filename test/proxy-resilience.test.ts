import net from 'node:net';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemorySink } from './support/memory-sink.js';
import { PgwardenError } from '../src/errors/registry.js';
import type { Judge } from '../src/policy/verdict.js';
import { createTestDatabase, type TestDatabase } from './support/db.js';
import { startEmbeddedPostgres, type RunningPostgres } from './support/embedded.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';
import { emptyFacts } from './support/read-only-judge.js';
import { RawClient, errorOf } from './support/raw-client.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

/**
 * Allows every statement. Only for testing the proxy's own defences that must hold even when
 * the policy lets a statement through (pinned settings).
 */
const allowEverything: Judge = {
  judge: () => ({
    verdict: { ...emptyFacts, kind: 'allow' },
    fingerprint: '',
    judgeMicros: 0,
    cached: false,
  }),
  namesRelation: () => true,
};

let db: TestDatabase;
let px: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase('resil');
  await db.sql(`CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
    INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g;`);
  px = await startTestProxy(db, {
    tables: ['public.items'],
    config: {
      tls: { certFile: fixture('tls.crt'), keyFile: fixture('tls.key'), allowPlaintext: 'loopback' },
    },
  });
});
afterAll(async () => {
  await px?.close();
  await db?.drop();
});

describe('TLS', () => {
  it('upgrades on SSLRequest (sslmode=require) and serves queries', async () => {
    const c = new pg.Client({ connectionString: await px.url(), ssl: { rejectUnauthorized: false } });
    await c.connect();
    expect((await c.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 10 }]);
    expect(
      (c as unknown as { connection: { stream: { encrypted?: boolean } } }).connection.stream.encrypted,
    ).toBe(true);
    await c.end();
  });

  it('answers a failure after the TLS upgrade inside TLS, before the startup packet too (red team, round 46)', async () => {
    const sslRequest = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
    const raw = net.connect(px.port, '127.0.0.1');
    await new Promise<void>((resolve) => raw.once('connect', resolve));
    raw.write(sslRequest);
    const answer = await new Promise<Buffer>((resolve) => raw.once('data', resolve));
    expect(answer.toString()).toBe('S');
    const secure = tls.connect({ socket: raw, rejectUnauthorized: false });
    await new Promise<void>((resolve) => secure.once('secureConnect', resolve));
    const received: Buffer[] = [];
    secure.on('data', (b: Buffer) => received.push(b));
    const ended = new Promise<void>((resolve) => secure.once('close', () => resolve()));
    // A second SSLRequest, inside TLS: refused with an error the client can read.
    secure.write(sslRequest);
    await ended;
    const reply = Buffer.concat(received);
    expect(String.fromCharCode(reply[0]!)).toBe('E');
    expect(reply.toString('latin1')).toContain('C08P01');
    expect(reply.toString('latin1')).toContain('encryption was already negotiated');
  });

  it('closes a connection that starts TLS directly (sslnegotiation=direct) without a plaintext answer it cannot read', async () => {
    // Its ClientHello read as a startup packet drew "54000 message of 369295617 bytes" in plaintext.
    const raw = net.connect(px.port, '127.0.0.1');
    const received: Buffer[] = [];
    raw.on('data', (b: Buffer) => received.push(b));
    raw.on('error', () => {});
    await new Promise<void>((resolve) => raw.once('connect', resolve));
    raw.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
    await new Promise<void>((resolve) => raw.once('close', () => resolve()));
    expect(Buffer.concat(received)).toHaveLength(0);
    // The look-alike: the same client through SSLRequest is served (the test above).
  });

  it('refuses plaintext where only TLS is allowed (08004)', async () => {
    const strict = await startTestProxy(db, {
      tables: ['public.items'],
      config: { tls: { allowPlaintext: 'never' } },
    });
    const c = new pg.Client({ connectionString: await strict.url() });
    await expect(c.connect()).rejects.toMatchObject({ code: '08004' });
    await strict.close();
  });
});

describe('tokens', () => {
  it('a token that expires during a session ends it with FATAL 28000 (by the expiry timer)', async () => {
    const c = await RawClient.connect(px.port);
    const ready = await c.login('support-bot', db.name, await px.token({ ttlSeconds: 2 }));
    expect(ready.at(-1)?.code).toBe('Z');
    // jose allows clock tolerance of auth.clockToleranceSec (5 s by default) at login only; the
    // session checks exp exactly.
    await new Promise((r) => setTimeout(r, 2200));
    c.send(serialize.query('SELECT 1 FROM items LIMIT 1'));
    const m = await c.read();
    expect(errorOf(m)).toMatchObject({
      severity: 'FATAL',
      code: '28000',
      message: expect.stringContaining('expired'),
    });
    expect(await c.read()).toBeUndefined();
  });

  it('the agent comes from the act claim, else the startup user name', async () => {
    const c = new pg.Client({
      connectionString: (await px.url({ agent: undefined })).replace('support-bot', 'report-bot'),
    });
    await c.connect();
    await c.query("SELECT 'who-am-i' FROM items LIMIT 1");
    await c.end();
    const rec = px.sink.records.find((r) => r.sql?.includes('who-am-i'));
    expect(rec?.agent).toBe('report-bot');
  });
});

describe('cancel and backpressure', () => {
  it('CancelRequest with pgwarden key data cancels the upstream query', async () => {
    const sql = postgres(await px.url(), { max: 1, onnotice: () => {}, fetch_types: false });
    const q = sql`SELECT pg_sleep(10) FROM items LIMIT 1`;
    const started = Date.now();
    setTimeout(() => void q.cancel(), 300);
    await expect(q).rejects.toMatchObject({ code: '57014' });
    expect(Date.now() - started).toBeLessThan(5000);
    await sql.end();
  });

  it('a CancelRequest works while pgwarden is full (limits.maxConnections; red team, round 46)', async () => {
    const full = await startTestProxy(db, {
      tables: ['public.items'],
      config: { limits: { maxConnections: 1 } },
    });
    const sql = postgres(await full.url(), { max: 1, onnotice: () => {}, fetch_types: false });
    try {
      const q = sql`SELECT pg_sleep(10) FROM items LIMIT 1`;
      const started = Date.now();
      setTimeout(() => void q.cancel(), 300);
      await expect(q).rejects.toMatchObject({ code: '57014' });
      expect(Date.now() - started).toBeLessThan(5000);
      // The look-alike: a second session is still refused.
      const second = new pg.Client({ connectionString: await full.url() });
      await expect(second.connect()).rejects.toMatchObject({ code: '53300' });
    } finally {
      await sql.end();
      await full.close();
    }
  });

  it('streams a large result with backpressure instead of buffering it', async () => {
    const c = await RawClient.connect(px.port);
    await c.login('support-bot', db.name, await px.token());
    c.socket.pause();
    // ~400 MB of rows; pgwarden must not read them faster than the client takes them.
    c.send(serialize.query("SELECT repeat('x', 4000) FROM generate_series(1, 10000), items"));
    const rss0 = process.memoryUsage().rss;
    await new Promise((r) => setTimeout(r, 3000));
    const grown = process.memoryUsage().rss - rss0;
    expect(grown).toBeLessThan(150 * 1024 * 1024);
    c.close();
  });
});

describe('server answers of any size', () => {
  it('clips an error message the server made huge from a short statement, and the session goes on (red team, round 45)', async () => {
    // The server quotes the input: 8 MB here, 520 MB took the whole process down.
    const c = new pg.Client({ connectionString: await px.url() });
    await c.connect();
    const err = (await c.query(`SELECT repeat('x', 8 * 1024 * 1024)::int`).catch((e: unknown) => e)) as {
      code: string;
      message: string;
    };
    expect(err.code).toBe('22P02');
    expect(err.message).toMatch(/^invalid input syntax for type integer: "x{1000}/);
    expect(err.message).toMatch(/\.\.\. \(pgwarden: the server's error was \d{7,} bytes long; clipped\)$/);
    expect(Buffer.byteLength(err.message)).toBeLessThan(20 * 1024);
    expect((await c.query('SELECT 1 AS n')).rows).toEqual([{ n: 1 }]);
    // The look-alike: an error of ordinary size passes whole.
    const small = (await c.query(`SELECT repeat('y', 1000)::int`).catch((e: unknown) => e)) as {
      message: string;
    };
    expect(small.message).toBe(`invalid input syntax for type integer: "${'y'.repeat(1000)}"`);
    await c.end();
  });
});

describe('drift of pinned settings', () => {
  it('ends the session if the server reports a changed client_encoding or search_path', async () => {
    const open = await startTestProxy(db, { judge: allowEverything });
    const c = new pg.Client({ connectionString: await open.url() });
    c.on('error', () => {});
    await c.connect();
    await expect(c.query("SET client_encoding = 'LATIN1'")).rejects.toMatchObject({ code: '42501' });
    await open.close();
  });
});

describe('a decision log that cannot take the record', () => {
  it('refuses the statement with the log error instead of running it unrecorded, and keeps serving', async () => {
    const refusing = {
      decide: (r: { sql: string | null }) => {
        if (r.sql?.includes('pg_sleep')) throw new PgwardenError('PGW_AUDIT_UNAVAILABLE');
      },
      complete: () => {},
      close: async () => {},
    };
    const strict = await startTestProxy(db, { tables: ['public.items'], sink: refusing });
    const c = new pg.Client({ connectionString: await strict.url() });
    await c.connect();
    const started = Date.now();
    await expect(c.query('SELECT pg_sleep(2) FROM items LIMIT 1')).rejects.toMatchObject({ code: '53000' });
    expect(Date.now() - started).toBeLessThan(1500); // it never ran
    expect((await c.query('SELECT count(*)::int AS n FROM items')).rows).toEqual([{ n: 10 }]);
    await c.end();
    await strict.close();
  });
});

describe('asynchronous server messages pass through', () => {
  it('NoticeResponse, NotificationResponse and ParameterStatus reach the client', async () => {
    const open = await startTestProxy(db, { judge: allowEverything });
    const listener = new pg.Client({ connectionString: await open.url() });
    await listener.connect();
    const notices: string[] = [];
    const notifications: string[] = [];
    listener.on('notice', (n) => notices.push(n.message ?? ''));
    listener.on('notification', (n) => notifications.push(n.payload ?? ''));
    await listener.query("DO $$ BEGIN RAISE NOTICE 'hello from the server'; END $$");
    await listener.query('LISTEN pgwarden_test');
    const sender = new pg.Client({ connectionString: await open.url() });
    await sender.connect();
    await sender.query("NOTIFY pgwarden_test, 'ping'");
    await new Promise((r) => setTimeout(r, 200));
    expect(notices).toContain('hello from the server');
    expect(notifications).toEqual(['ping']);
    const raw = await RawClient.connect(open.port);
    await raw.login('support-bot', db.name, await open.token());
    raw.send(serialize.query("SET application_name = 'renamed-bot'"));
    const reply = await raw.untilReady();
    const status = reply.find((m) => m.code === 'S');
    expect(status?.body.toString()).toBe('application_name\0renamed-bot\0');
    raw.close();
    await sender.end();
    await listener.end();
    await open.close();
  });
});

describe('upstream that goes away', () => {
  let server: RunningPostgres;
  let proxy: TestProxy;

  beforeAll(async () => {
    server = await startEmbeddedPostgres();
    const url = new URL(server.url);
    proxy = await startTestProxy(
      {
        url: server.url,
        name: 'postgres',
        host: url.hostname,
        port: server.port,
        user: 'postgres',
        password: 'postgres',
        sql: async () => [],
        drop: async () => {},
      },
      { tables: ['pg_catalog.pg_class'], sink: createMemorySink() },
    );
  });
  afterAll(async () => {
    await proxy?.close();
    await server?.destroy();
  });

  it('ends affected sessions with 08006, refuses new ones while down, and serves again after restart', async () => {
    const c = new pg.Client({ connectionString: await proxy.url() });
    const errors: unknown[] = [];
    c.on('error', (e) => errors.push(e));
    await c.connect();
    expect((await c.query('SELECT count(*) > 0 AS ok FROM pg_catalog.pg_class')).rows).toEqual([
      { ok: true },
    ]);
    await server.stop();
    await new Promise((r) => setTimeout(r, 300));
    expect(errors).toContainEqual(expect.objectContaining({ code: '08006' }));
    const down = new pg.Client({ connectionString: await proxy.url() });
    await expect(down.connect()).rejects.toMatchObject({ code: '08006' });
    await server.start();
    const again = new pg.Client({ connectionString: await proxy.url() });
    await again.connect();
    expect((await again.query('SELECT count(*) > 0 AS ok FROM pg_catalog.pg_class')).rows).toEqual([
      { ok: true },
    ]);
    await again.end();
  });
});
