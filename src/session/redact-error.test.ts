import { describe, expect, it } from 'vitest';
import { bindHasParameters } from '../protocol/frontend-messages.js';
import { redactQuoted, redactValues, valueTexts } from './redact-error.js';

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
