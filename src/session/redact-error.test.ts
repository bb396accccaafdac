import { describe, expect, it } from 'vitest';
import { bindHasParameters } from '../protocol/frontend-messages.js';
import { serialize } from 'pg-protocol';
import {
  WITHHELD_MESSAGE,
  keptBind,
  redactQuoted,
  redactValues,
  redactedError,
  valueTexts,
} from './redact-error.js';

/** The body of a Bind of the unnamed statement with these text values. */
function bindBody(values: string[]): Buffer {
  const m = serialize.bind({ values });
  return m.subarray(5);
}

describe('redacting quoted spans of a server error', () => {
  it('replaces each quoted span and keeps the rest of the message', () => {
    expect(redactQuoted('invalid input syntax for type integer: "1-4111-1111-1111-1111 cvv 123"')).toBe(
      'invalid input syntax for type integer: [redacted]',
    );
    expect(redactQuoted("malformed range literal: 'x' near 'y'")).toBe('malformed range literal: [redacted]');
    expect(redactQuoted('division by zero')).toBe('division by zero');
  });

  it('never leaves the tail of a value that contains the quote itself', () => {
    expect(redactQuoted('invalid input syntax for type integer: "4111" 1111 "1111"')).toBe(
      'invalid input syntax for type integer: [redacted]',
    );
    expect(redactQuoted('value "it\'s 4111')).toBe('value [redacted]');
  });
});

describe('redacting bind values the server prints unquoted (red team, round 25)', () => {
  it('finds text values, and binary integers by their digits, longest first', () => {
    const int4 = Buffer.alloc(4);
    int4.writeInt32BE(-987654320);
    const secrets = valueTexts([Buffer.from('123456789'), int4, Buffer.from('7'), null], [0, 1, 0, 0]);
    expect(secrets).toEqual(expect.arrayContaining(['123456789', '-987654320']));
    expect(secrets).not.toContain('7');
    expect(redactValues('requested character too large for encoding: 123456789', secrets)).toBe(
      'requested character too large for encoding: [redacted]',
    );
    expect(redactValues('date out of range: -987654320-01-01', secrets)).toBe(
      'date out of range: [redacted]-01-01',
    );
    expect(redactValues('division by zero', secrets)).toBe('division by zero');
  });

  it('finds binary text values, floats, and numbers in the form the server prints them (red team, round 26)', () => {
    const f8 = Buffer.alloc(8);
    f8.writeDoubleBE(123456784);
    const secrets = valueTexts(
      [Buffer.from('987654321'), f8, Buffer.from('+0123_456_783'), Buffer.from(' 123456785.0 ')],
      [1, 1, 0, 0],
    );
    for (const printed of ['987654321', '123456784', '123456783', '123456785'])
      expect(redactValues(`value ${printed} is out of range`, secrets), printed).toBe(
        'value [redacted] is out of range',
      );
  });
});

describe('redacting numbers written in other forms (red team, round 35)', () => {
  it('finds hexadecimal, octal and binary integers and exponents as the server prints them', () => {
    const secrets = valueTexts(
      ['0x1E8483', '2.5e6', '-0o17', '0b1010_1010', '1.5E-3'].map((v) => Buffer.from(v)),
      [0, 0, 0, 0, 0],
    );
    for (const printed of ['2000003', '2500000', '-15', '170', '0.0015'])
      expect(redactValues(`value ${printed} is out of range`, secrets), printed).toBe(
        'value [redacted] is out of range',
      );
    // Text that only looks like a number keeps its own reading.
    expect(valueTexts([Buffer.from('0xZZ'), Buffer.from('e5')], [0, 0])).toEqual(['0xZZ', 'e5']);
  });
});

describe('error messages of a session with cursors declared with parameter values', () => {
  it('redact the values of every such cursor, and are withheld when one was too large to keep', () => {
    const bind = (v: string): Buffer => keptBind(bindBody([v])) as Buffer;
    const message = 'invalid input syntax for type integer: S3CRET-1 and 123456789';
    expect(redactedError(message, [undefined, bind('S3CRET-1'), bind('123456789')])).toBe(
      'invalid input syntax for type integer: [redacted] and [redacted]',
    );
    expect(redactedError(message, [undefined, 'withheld'])).toBe(WITHHELD_MESSAGE);
    expect(redactedError(message, [])).toBe(message.replace(/"[^"]*"/g, '[redacted]'));
  });
});

describe('whether a Bind carries parameter values', () => {
  const bind = (params: number): Buffer => {
    const names = Buffer.from('p\0s\0');
    const counts = Buffer.alloc(4 + params * 5 + 2);
    counts.writeInt16BE(0, 0);
    counts.writeInt16BE(params, 2);
    for (let i = 0; i < params; i++) {
      counts.writeInt32BE(1, 4 + i * 5);
      counts.write('7', 8 + i * 5);
    }
    return Buffer.concat([names, counts]);
  };
  it('reads the count, and answers true when the message is too short to tell', () => {
    expect(bindHasParameters(bind(0))).toBe(false);
    expect(bindHasParameters(bind(2))).toBe(true);
    expect(bindHasParameters(Buffer.from('p\0s'))).toBe(true);
  });
});
