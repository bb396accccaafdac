import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, seedItemsAndSecrets, type TestDatabase } from './support/db.js';
import { startTestProxy, type TestProxy } from './support/proxy.js';
import { RawClient } from './support/raw-client.js';

/**
 * Mutated protocol streams after login, from a fixed seed so a failure replays: valid message
 * sequences with bytes flipped, lengths changed, messages cut short or repeated. Whatever a
 * session receives, pgwarden answers with protocol messages or closes that session; it never
 * forwards a statement that was not judged, and every other session keeps working.
 */
let db: TestDatabase;
let px: TestProxy;

beforeAll(async () => {
  db = await createTestDatabase('fuzz');
  await seedItemsAndSecrets(db, 10);
  px = await startTestProxy(db, { tables: ['public.items'] });
});
afterAll(async () => {
  await px?.close();
  await db?.drop();
});

/** mulberry32: a small seeded generator, so every run sends the same streams. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const seeds: Buffer[] = [
  serialize.query('SELECT name FROM items WHERE id = 3'),
  serialize.query('SELECT secret FROM secrets'),
  Buffer.concat([
    serialize.parse({ name: 's1', text: 'SELECT name FROM items WHERE id = $1', types: [23] }),
    serialize.bind({ statement: 's1', values: ['4'] }),
    serialize.describe({ type: 'P' }),
    serialize.execute({}),
    serialize.sync(),
  ]),
  Buffer.concat([
    serialize.parse({ text: 'SELECT secret FROM secrets' }),
    serialize.bind({}),
    serialize.execute({}),
    serialize.close({ type: 'S', name: '' }),
    serialize.sync(),
  ]),
];

function mutate(stream: Buffer, next: () => number): Buffer {
  const b = Buffer.from(stream);
  const pick = (n: number): number => Math.floor(next() * n);
  switch (pick(5)) {
    case 0: // flip a few bytes anywhere, type bytes and lengths included
      for (let i = 0; i < 1 + pick(4); i++) b[pick(b.length)] = pick(256);
      return b;
    case 1: // cut the stream short
      return b.subarray(0, pick(b.length));
    case 2: {
      // a length word that lies
      const at = pick(b.length - 4);
      b.writeInt32BE(pick(2) === 0 ? pick(1 << 30) : -pick(1 << 20), at);
      return b;
    }
    case 3: // repeat a slice
      return Buffer.concat([b, b.subarray(pick(b.length))]);
    default: // an unknown message type in front
      return Buffer.concat([Buffer.from([pick(256), 0, 0, 0, 4]), b]);
  }
}

describe('mutated protocol streams', () => {
  it('get protocol answers or a closed session, never a crash, and other sessions keep working', async () => {
    const healthy = new pg.Client({ connectionString: await px.url() });
    await healthy.connect();
    const next = rng(20261121);
    const leaked: string[] = [];
    try {
      for (let round = 0; round < 60; round++) {
        const raw = await RawClient.connect(px.port);
        try {
          await raw.login('fuzz', db.name, await px.token());
          raw.send(mutate(seeds[round % seeds.length]!, next));
          // Read what comes back until the session goes quiet or closes.
          for (;;) {
            const m = await raw.read(150).catch(() => undefined);
            if (!m) break;
            // Only protocol messages pgwarden or the server send; a DataRow holding the secret
            // would mean a statement ran unjudged.
            expect('123CDEHIKNRSTVZnstc'.includes(m.code)).toBe(true);
            if (m.code === 'D' && m.body.includes('hidden')) leaked.push(`round ${round}`);
          }
        } finally {
          raw.close();
        }
        if (round % 15 === 14) {
          const r = await healthy.query('SELECT count(*)::int AS n FROM items');
          expect(r.rows).toEqual([{ n: 10 }]);
        }
      }
    } finally {
      await healthy.end();
    }
    expect(leaked).toEqual([]);
    // And a new session still works after all of it.
    const after = new pg.Client({ connectionString: await px.url() });
    await after.connect();
    expect((await after.query('SELECT name FROM items WHERE id = 1')).rows).toEqual([{ name: 'item 1' }]);
    await after.end();
  }, 120_000);
});
