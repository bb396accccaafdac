import { serialize } from 'pg-protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PgwardenError } from '../errors/registry.js';
import { StartupCode } from './codes.js';
import { FrontendDecoder, type FrontendMessage } from './frontend-decoder.js';
import {
  readBind,
  readExecute,
  readParse,
  readQuery,
  readStartupPacket,
  readTarget,
  sqlTextBounds,
  utf8Head,
} from './frontend-messages.js';

/** A pipelined extended-protocol request followed by a simple query, as real clients send. */
const stream = Buffer.concat([
  serialize.parse({ name: 's1', text: 'SELECT $1::int + $2', types: [23, 23] }),
  serialize.bind({ portal: 'p1', statement: 's1', values: ['1', null] }),
  serialize.describe({ type: 'P', name: 'p1' }),
  serialize.execute({ portal: 'p1', rows: 10 }),
  serialize.close({ type: 'S', name: 's1' }),
  serialize.sync(),
  serialize.query('SELECT 1; SELECT ☃'),
  serialize.flush(),
]);

function decodeAll(chunks: Buffer[]): FrontendMessage[] {
  const d = new FrontendDecoder(1 << 20);
  d.startTypedPhase(1 << 20);
  const out: FrontendMessage[] = [];
  for (const c of chunks) {
    d.push(c);
    for (let m = d.next(); m; m = d.next()) out.push(m);
  }
  expect(d.pendingBytes).toBe(0);
  return out;
}

describe('FrontendDecoder', () => {
  const whole = decodeAll([stream]);

  it('decodes each message and its body', () => {
    expect(whole.map((m) => String.fromCharCode(m.code)).join('')).toBe('PBDECSQH');
    expect(readParse(whole[0]!.body)).toEqual({
      statement: 's1',
      query: 'SELECT $1::int + $2',
      paramTypes: [23, 23],
    });
    const bind = readBind(whole[1]!.body);
    expect(bind.portal).toBe('p1');
    expect(bind.params.map((p) => p?.toString() ?? null)).toEqual(['1', null]);
    expect(readTarget(whole[2]!.body)).toEqual({ target: 'P', name: 'p1' });
    expect(readExecute(whole[3]!.body)).toEqual({ portal: 'p1', maxRows: 10 });
    expect(readQuery(whole[6]!.body)).toBe('SELECT 1; SELECT ☃');
    expect(Buffer.concat(whole.map((m) => m.raw))).toEqual(stream);
  });

  it('gives the same messages when the stream is split at every byte boundary', () => {
    for (let i = 1; i < stream.length; i++) {
      const got = decodeAll([stream.subarray(0, i), stream.subarray(i)]);
      expect(got.map((m) => m.raw.toString('hex'))).toEqual(whole.map((m) => m.raw.toString('hex')));
    }
  });

  it('gives the same messages when fed one byte at a time', () => {
    const bytes = [...stream].map((b) => Buffer.from([b]));
    expect(decodeAll(bytes).map((m) => m.raw.toString('hex'))).toEqual(
      whole.map((m) => m.raw.toString('hex')),
    );
  });

  it('refuses a length below 4 and a length above the limit before buffering the body', () => {
    const d = new FrontendDecoder(1024);
    d.startTypedPhase(1024);
    d.push(Buffer.from([0x51, 0, 0, 0, 3]));
    expect(() => d.next()).toThrowError(
      expect.objectContaining({ code: 'PGW_PROTOCOL_VIOLATION' }) as PgwardenError,
    );
    const big = new FrontendDecoder(1024);
    big.startTypedPhase(1024);
    big.push(Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff]));
    expect(() => big.next()).toThrowError(
      expect.objectContaining({ code: 'PGW_MESSAGE_TOO_LARGE' }) as PgwardenError,
    );
  });

  it('reads startup-phase packets, split at every byte boundary', () => {
    const startup = serialize.startup({ user: 'bot', database: 'app', application_name: 'x' });
    for (let i = 1; i < startup.length; i++) {
      const d = new FrontendDecoder(10_000);
      d.push(startup.subarray(0, i));
      expect(d.next()).toBeUndefined();
      d.push(startup.subarray(i));
      const m = d.next()!;
      const packet = readStartupPacket(m.body);
      expect(packet).toMatchObject({ type: 'startup', major: 3, minor: 0 });
      if (packet.type === 'startup')
        expect(Object.fromEntries(packet.params)).toMatchObject({
          user: 'bot',
          database: 'app',
          application_name: 'x',
        });
    }
    const ssl = Buffer.alloc(8);
    ssl.writeInt32BE(8);
    ssl.writeInt32BE(StartupCode.SSLRequest, 4);
    const d = new FrontendDecoder(10_000);
    d.push(ssl);
    expect(readStartupPacket(d.next()!.body)).toEqual({ type: 'ssl' });
  });

  it('refuses malformed bodies: unterminated strings, trailing bytes, counts that lie', () => {
    expect(() => readQuery(Buffer.from('SELECT 1'))).toThrow(/unterminated/);
    expect(() => readExecute(Buffer.from('p\0\0\0\0\x01extra'))).toThrow(/trailing/);
    const lying = Buffer.from(serialize.bind({ values: ['a'] }).subarray(5));
    lying.writeInt16BE(5, 6); // claims five parameters, carries one
    expect(() => readBind(lying)).toThrow(PgwardenError);
    const badFormat = Buffer.from(serialize.bind({ values: ['a'] }).subarray(5));
    badFormat.writeInt16BE(7, 4); // format code 7 does not exist
    expect(() => readBind(badFormat)).toThrow(/format/);
  });

  describe('does linear work however the bytes are split', () => {
    afterEach(() => {
      vi.restoreAllMocks();
    });

    /** Bytes the decoder copies (Buffer.concat output and Buffer#copy) while decoding `chunks`. */
    function bytesCopied(chunks: Buffer[], limit: number): { copied: number; messages: FrontendMessage[] } {
      const d = new FrontendDecoder(limit);
      d.startTypedPhase(limit);
      let copied = 0;
      const concat = Buffer.concat.bind(Buffer);
      vi.spyOn(Buffer, 'concat').mockImplementation((list, total) => {
        const out = concat(list, total);
        copied += out.length;
        return out;
      });
      const copy = Buffer.prototype.copy;
      vi.spyOn(Buffer.prototype, 'copy').mockImplementation(function (this: Buffer, ...args) {
        const n = copy.apply(this, args);
        copied += n;
        return n;
      });
      const messages: FrontendMessage[] = [];
      for (const c of chunks) {
        d.push(c);
        for (let m = d.next(); m; m = d.next()) messages.push(m);
      }
      vi.restoreAllMocks();
      expect(d.pendingBytes).toBe(0);
      return { copied, messages };
    }

    function split(b: Buffer, size: number): Buffer[] {
      const out: Buffer[] = [];
      for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size));
      return out;
    }

    /** A PasswordMessage of `size` bytes followed by a Sync. */
    function wireOf(size: number): { big: Buffer; trailer: Buffer; wire: Buffer } {
      const big = Buffer.alloc(size, 0x41);
      big[0] = 0x70;
      big.writeInt32BE(size - 1, 1);
      big[size - 1] = 0;
      const trailer = serialize.sync();
      return { big, trailer, wire: Buffer.concat([big, trailer]) };
    }

    it.each([
      [4 * 1024 * 1024, 65536],
      [4 * 1024 * 1024, 4096],
      [1024 * 1024, 1000],
      [64 * 1024, 7],
    ])('copies each byte at most twice: %i bytes in %i-byte chunks', (size, chunkSize) => {
      const { big, trailer, wire } = wireOf(size);
      const { copied, messages } = bytesCopied(split(wire, chunkSize), 16 * 1024 * 1024);
      // Re-joining the unfinished bytes on every chunk copies about size² / (2 × chunkSize) bytes.
      expect(copied).toBeLessThanOrEqual(2 * wire.length);
      expect(messages.map((m) => m.code)).toEqual([0x70, 0x53]);
      expect(messages[0]!.raw.equals(big)).toBe(true);
      expect(messages[1]!.raw.equals(trailer)).toBe(true);
    });

    it('hands out messages within one chunk as views, without copying', () => {
      const { copied, messages } = bytesCopied([stream], 1 << 20);
      expect(copied).toBe(0);
      expect(messages.every((m) => m.buffer === stream)).toBe(true);
    });

    it('never changes a message it has returned when more bytes arrive', () => {
      const d = new FrontendDecoder(1 << 20);
      d.startTypedPhase(1 << 20);
      const q1 = serialize.query('SELECT 1');
      const q2 = serialize.query('SELECT 2');
      d.push(Buffer.from([0x53])); // half a Sync, so later small chunks are gathered
      d.push(Buffer.concat([Buffer.from([0, 0, 0, 4]), q1.subarray(0, 3)]));
      const sync = d.next()!;
      d.push(q1.subarray(3));
      const first = d.next()!;
      d.push(q2);
      const second = d.next()!;
      expect([sync.raw, first.raw, second.raw].map((b) => b.toString('hex'))).toEqual(
        [serialize.sync(), q1, q2].map((b) => b.toString('hex')),
      );
    });
  });
});

describe('SQL text of Query and Parse, unread', () => {
  it('is located without decoding, and its head is cut before a character, never inside one', () => {
    const text = 'SELECT 1 -- é漢😀';
    const q = Buffer.from(`${text}\0`);
    expect(sqlTextBounds(false, q)).toEqual({ start: 0, end: Buffer.byteLength(text) });
    const p = Buffer.concat([Buffer.from(`s1\0${text}\0`), Buffer.from([0, 0])]);
    expect(sqlTextBounds(true, p)).toEqual({ start: 3, end: 3 + Buffer.byteLength(text) });
    const bytes = Buffer.byteLength(text);
    for (let max = 0; max <= bytes; max++) {
      const head = utf8Head(q, 0, bytes, max);
      expect(head.includes('\uFFFD'), `max ${max}`).toBe(false);
      expect(text.startsWith(head)).toBe(true);
      expect(Buffer.byteLength(head)).toBeLessThanOrEqual(max);
    }
    expect(() => sqlTextBounds(false, Buffer.from('SELECT 1'))).toThrow(/unterminated/);
  });
});
