import { serialize } from 'pg-protocol';
import { describe, expect, it } from 'vitest';
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
});
